"""Generated colour palettes for datasets without official colours (ADE20K, Pascal VOC)."""


def voc_colormap(num_colors: int) -> list[list[int]]:
    """Pascal VOC's bit-interleaved colormap: colour ``i`` spreads the bits of ``i`` over R, G, B.

    Bit ``3k + c`` of the index sets bit ``7 - k`` of channel ``c``, so index 0 is black,
    1 is dark red (128, 0, 0), 2 dark green, 3 olive, ... and all 256 colours are distinct.

    Args:
        num_colors: how many colours, at most 256.

    Returns:
        ``num_colors`` lists ``[r, g, b]`` of ints in [0, 255].
    """
    if not 0 <= num_colors <= 256:
        raise ValueError(f"the VOC colormap has 256 colours, {num_colors} were asked for")
    palette = []
    for index in range(num_colors):
        rgb = [0, 0, 0]
        bits = index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((bits >> channel) & 1) << shift
            bits >>= 3
        palette.append(rgb)
    return palette
