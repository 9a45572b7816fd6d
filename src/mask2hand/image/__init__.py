"""Mask images: reading mask files, cleaning them (binarize, largest region) and cutting the
square window around the hand, with the pixel and camera maps of every step. Shared by the
datasets (training cuts windows as predict does) and inference; numpy and OpenCV only."""
