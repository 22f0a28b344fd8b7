"""Instance and schedule files (docs/model.md section 6): the public face of :mod:`hetkv_opt.io.files`
and :mod:`hetkv_opt.io.npz_stream`.

JSON for small files, NPZ for large ones; loaders validate everything and name the file,
the field and the reason; writers are atomic (a file is whole or absent).

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

__all__ = ["FileFormatError", "NpzInstanceWriter", "atomic_write_bytes", "atomic_write_with",
           "check_header", "instance_from_dict", "instance_hash", "instance_to_dict",
           "load_instance", "load_schedule", "read_npz_with_header", "save_instance",
           "save_schedule", "schedule_from_dict", "schedule_to_dict"]
