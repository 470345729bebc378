"""`haste-onnx fetch-data fashion-mnist`: download Fashion-MNIST into the haste-onnx cache, without root.

Calls `haste_onnx.data.fetch_fashion_mnist`: Debian's `dataset-fashion-mnist`
package is downloaded with a private apt setup and unpacked into
`<cache>/fashion-mnist` (`~/.cache/haste-onnx`, or `$HASTE_ONNX_CACHE`, or
`--cache-dir`). Files already there are kept unless `--force`.
"""
from __future__ import annotations

from ..errors import InputError

HELP = "download a data set (fashion-mnist) into the haste-onnx cache, without root"


def configure(parser) -> None:
    parser.add_argument("dataset", choices=["fashion-mnist"], help="the data set to fetch")
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help="cache folder (default $HASTE_ONNX_CACHE or ~/.cache/haste-onnx); the files go to "
                             "DIR/fashion-mnist")
    parser.add_argument("--force", action="store_true", help="download again even if the files are there")


def run(args) -> int:
    from ..data import fashion_mnist as hdata

    existing = None
    if not args.force:
        try:
            existing = hdata.find_fashion_mnist(cache_dir=args.cache_dir, split="test")
            hdata.find_fashion_mnist(existing, split="train")
        except hdata.DatasetNotFoundError:
            existing = None
    if existing is not None:
        print(f"Fashion-MNIST is already in {existing}")
        return 0
    try:
        dest = hdata.fetch_fashion_mnist(args.cache_dir, force=args.force, verbose=True)
    except RuntimeError as err:
        raise FetchError(" ".join(line.strip() for line in str(err).splitlines() if line.strip())) from err
    except OSError as err:
        raise FetchError(f"cannot write the cache: {err}") from err
    print(f"Fashion-MNIST is in {dest}")
    return 0


class FetchError(InputError):
    """The download failed (no network, no apt-get, no mirror with the package): exit code 3."""
