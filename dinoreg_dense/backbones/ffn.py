"""Feed-forward layers: GELU MLP (ViT-S/B/L) and SwiGLU (DINOv2 ViT-g)."""

from torch import Tensor, nn
from torch.nn import functional as F


class Mlp(nn.Module):
    """Linear -> GELU -> Linear, parameter names ``fc1`` / ``fc2`` as in DINOv2 and timm."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., C) -> (..., C)."""
        return self.fc2(self.act(self.fc1(x)))


class SwiGLUFFN(nn.Module):
    """SiLU(x W1) * (x W2) then W3; W1 and W2 are packed in ``w12`` as in the DINOv2 checkpoints."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden_dim, bias=bias)
        self.w3 = nn.Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., C) -> (..., C)."""
        gate, value = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(gate) * value)
