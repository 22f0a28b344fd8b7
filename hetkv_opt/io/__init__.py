"""Instance and schedule files (docs/model.md section 6): the public face of :mod:`hetkv_opt.io.files`,
:mod:`hetkv_opt.io.npz_stream`, :mod:`hetkv_opt.io.shards` (with
:mod:`hetkv_opt.io.shards_stream`, and :mod:`hetkv_opt.io.reshard`: an NPZ file to a
sharded folder, streamed) and :mod:`hetkv_opt.io.summary`.

JSON for small files, NPZ for large ones, and a ``.hetkv`` folder of one file per layer
for instances too big to load in one process; loaders validate everything and name the
file, the field and the reason; writers are atomic (a file or folder is whole or absent).

>>> import os, tempfile
>>> from hetkv_opt.io import instance_hash, load_instance, save_instance
>>> from hetkv_opt.model.instance import tiny_instance
>>> path = os.path.join(tempfile.mkdtemp(), "tiny.npz")
>>> save_instance(tiny_instance(), path)
>>> instance_hash(load_instance(path)) == instance_hash(tiny_instance())
True
"""

from hetkv_opt.io.files import (FileFormatError, atomic_write_bytes, atomic_write_with, check_header,
                                instance_from_dict, instance_hash, instance_to_dict, load_instance,
                                load_schedule, read_npz_with_header, save_instance, save_schedule,
                                schedule_from_dict, schedule_to_dict)
from hetkv_opt.io.npz_stream import NpzInstanceWriter
from hetkv_opt.io.shards import Sharded, open_sharded, save_sharded
from hetkv_opt.io.reshard import npz_to_sharded
from hetkv_opt.io.shards_stream import ShardedInstanceWriter
from hetkv_opt.io.summary import describe

__all__ = ["FileFormatError", "NpzInstanceWriter", "Sharded", "ShardedInstanceWriter",
           "atomic_write_bytes", "atomic_write_with", "check_header", "describe",
           "instance_from_dict", "instance_hash", "instance_to_dict", "load_instance",
           "load_schedule", "npz_to_sharded", "open_sharded", "read_npz_with_header", "save_instance",
           "save_schedule", "save_sharded", "schedule_from_dict", "schedule_to_dict"]
