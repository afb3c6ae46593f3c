# Pascal VOC 2012 trainval (11,540 images), every object box (docs/discovery.md).
dataset = dict(type="VOCBoxesDataset", data_root="data/VOCdevkit", year=2012, split="trainval")
