"""Imaging: the MATLAB protocol on arrays and files (image I/O and headers, colour, ``imresize``,
PSNR/SSIM). NumPy only, no TensorFlow.

May import: ``amls2.config``, ``amls2.errors``, ``amls2.fileio``.
"""
