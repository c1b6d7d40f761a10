"""The history of generated images: what each image file says about how it was made (infotext, imagefile),
an index of them with ratings and comparisons, search over it, and how well each LoRA did.

Nothing is imported here on purpose: reading one image's metadata must not load SQLite, numpy or the
scorer, and each module is imported by name where it is used.
"""
