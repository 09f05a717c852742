"""Data: the dataset registry and downloads, the two tracks' degradations, the degrade job, patch
files, and training/validation images in NumPy (``pipeline``) fed through tf.data
(``train_dataset``).

May import: the top-level modules and ``amls2.imaging``.
"""
