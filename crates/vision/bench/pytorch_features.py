"""PyTorch CPU reference for `volley features`: the same work, timed the same way.

First N MNIST test images -> PIL bilinear Resize(224) -> ToTensor -> grey repeated to 3
channels -> torchvision regnet_x_400mf (fc = Identity, eval, inference_mode) in batches,
on T threads. Prints images/s and peak RSS (ru_maxrss) as JSON.

usage: python pytorch_features.py WEIGHTS.pth MNIST_DIR [--limit 1000] [--threads 2] [--batch-size 32]
"""
import argparse, gzip, json, resource, struct, time

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

p = argparse.ArgumentParser()
p.add_argument("weights")
p.add_argument("mnist_dir")
p.add_argument("--limit", type=int, default=1000)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--check", help="features_f32.npy to compare the first rows with")
a = p.parse_args()

torch.set_num_threads(a.threads)
with gzip.open(f"{a.mnist_dir}/t10k-images-idx3-ubyte.gz") as f:
    magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
    images = np.frombuffer(f.read(), dtype=np.uint8).reshape(n, rows, cols)[: a.limit]

model = torchvision.models.regnet_x_400mf()
model.load_state_dict(torch.load(a.weights, map_location="cpu"))
model.fc = torch.nn.Identity()
model.eval()
transform = transforms.Compose([transforms.Resize(224), transforms.ToTensor()])

start = time.perf_counter()
out = []
with torch.inference_mode():
    for i in range(0, len(images), a.batch_size):
        batch = torch.stack([transform(Image.fromarray(im)).repeat(3, 1, 1) for im in images[i : i + a.batch_size]])
        out.append(model(batch))
seconds = time.perf_counter() - start
features = torch.cat(out)
result = {
    "images": len(images),
    "seconds": seconds,
    "images_per_second": len(images) / seconds,
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "threads": a.threads,
    "batch_size": a.batch_size,
    "torch": torch.__version__,
}
if a.check:
    ref = np.load(a.check)
    result["max_abs_error_vs_fixture"] = float(np.abs(features[: len(ref)].numpy() - ref).max())
print(json.dumps(result))
