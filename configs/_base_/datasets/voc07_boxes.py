# Pascal VOC 2007 trainval (5,011 images), every object box (docs/discovery.md).
dataset = dict(type="VOCBoxesDataset", data_root="data/VOCdevkit", year=2007, split="trainval")
