"""Measuring results: CLIP score, image quality (SSIM/PSNR), solver stability (the paper's
Table 11) and the evaluation/ablation runner with its report.
"""
