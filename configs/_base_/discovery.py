# Object discovery defaults (tools/discover.py; schema in docs/discovery.md): LOST's settings
# (valeoai/LOST main_lost.py) and TokenCut's (Wang et al. 2022). Each method's dict holds the
# keyword arguments of its function in dinoreg_dense.discovery; --method picks one.
discovery = dict(
    method="lost",
    features="k",  # last block's keys: DINO / DINOv2; values ("v") for DeiT-III / OpenCLIP
    lost=dict(k_patches=100, similarity_bias=0.0),
    tokencut=dict(tau=0.2, eps=1e-5),
)
# No resize; ImageNet normalisation; "pad" to a multiple of the patch size (LOST) or "crop".
inputs = dict(mode="pad", batch_size=1, num_workers=2)
