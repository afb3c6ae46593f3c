# Pascal VOC 2012 segmentation, 21 classes (background + 20), border label 255 ignored.
# Set train_dataloader.dataset.use_sbd_aug=True to train on the 10,582 SBD-augmented images.
_base_ = ["./ade20k.py"]
dataset_type = "VOCDataset"
data_root = "data/VOCdevkit"
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, split="train"))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, split="val"))
test_dataloader = val_dataloader
