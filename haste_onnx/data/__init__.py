"""Real data for evaluating HASTE models, one module per job:

- `idx`: IDX files (read, write, a split of images and labels);
- `fashion_mnist`: where Fashion-MNIST / MNIST are, and fetching Fashion-MNIST
  without root (Debian's package, unpacked into the cache);
- `preprocess`: fitting images to a model's input (resize, pad, normalise)
  and the normalisations of this project's models;
- `folders`: image folders, one subfolder per class;
- `imagenet_samples`: foolbox's 20 labelled ImageNet images;
- `sources`: one data source as the commands name it, loaded and prepared.

numpy only at import time. This package re-exports the names callers use.
"""
from .fashion_mnist import (DEBIAN_FASHION_MNIST_DIR, DEBIAN_PACKAGE, FASHION_MNIST_CLASSES, FETCH_COMMAND,  # noqa: F401
                            FETCH_PYTHON, default_cache_dir, fetch_fashion_mnist, find_fashion_mnist,
                            load_fashion_mnist, load_mnist)
from .folders import load_image_folder, load_unlabelled_images  # noqa: F401
from .idx import DatasetNotFoundError, find_idx_file, load_idx_dataset, read_idx, write_idx  # noqa: F401
from .preprocess import (FASHION_MNIST_MEAN, FASHION_MNIST_MEAN_STD, FASHION_MNIST_STD, IMAGENET_MEAN_STD,  # noqa: F401
                         fit_to_input, model_input_hw, normalize, prepare_images, preprocess_fashion_mnist,
                         resize_bilinear)
