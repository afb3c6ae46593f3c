# Toy VOC-layout boxes: python tools/make_toy_dataset.py data/toy_voc_boxes --layout voc-boxes
dataset = dict(type="VOCBoxesDataset", data_root="data/toy_voc_boxes", year=2007, split="trainval")
