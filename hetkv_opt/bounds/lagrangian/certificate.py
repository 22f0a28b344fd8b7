"""The certificate of a Lagrangian bound: the prices that prove it, in a file anyone can
check with :func:`hetkv_opt.bounds.lagrangian.verify.verify_bound`.

Schema ``hetkv-bound-certificate`` version 1: an NPZ with a JSON ``header`` (instance hash,
mode, row names, the claimed bound, the prices' checksum, metadata) and the arrays
``prices.lambda`` (J, E) and ``prices.mu_s_per_byte`` (C, E).

>>> import numpy as np
>>> cert = BoundCertificate(instance_sha256="0" * 64, instance_name="x", mode="exclusive",
...                         terms=["device[0]"], capacity_tiers=[], lam=np.zeros((1, 2)),
...                         mu_s_per_byte=np.zeros((0, 2)), bound_s=0.0)
>>> cert.header()["schema"], len(cert.header()["prices_sha256"])
('hetkv-bound-certificate', 64)
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hetkv_opt.io.files import atomic_write_bytes, check_header, read_npz_with_header
from hetkv_opt.model.instance import ModelError

SCHEMA_CERTIFICATE = "hetkv-bound-certificate"
CERTIFICATE_VERSION = 1
METHOD = "lagrangian"


class CertificateError(ModelError):
    """A certificate that cannot be read or does not prove what it claims."""


def prices_digest(lam: np.ndarray, mu_s: np.ndarray) -> str:
    """The checksum of a certificate's price arrays (its header's ``prices_sha256``)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(lam, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(mu_s, dtype="<f8").tobytes())
    h.update(repr((lam.shape, mu_s.shape)).encode())
    return h.hexdigest()


@dataclass
class BoundCertificate:
    """The prices that prove a Lagrangian bound (schema ``hetkv-bound-certificate``).

    Attributes
    ----------
    instance_sha256 : str
        :func:`hetkv_opt.io.files.instance_hash` of the instance the prices are for.
    terms : list of str
        Rows of ``lam``: ``device[k]``, ``link_read[k]``, ``link_write[k]``, ``cut``.
    capacity_tiers : list of int
        Rows of ``mu_s_per_byte``.
    lam : ndarray (J, E)
        Time-row prices: >= 0, every column sums to <= 1.
    mu_s_per_byte : ndarray (C, E)
        Capacity prices (seconds per byte), >= 0.
    bound_s : float
        The bound the prices prove (margin subtracted), as claimed by the writer.
    """

    instance_sha256: str
    instance_name: str
    mode: str
    terms: list
    capacity_tiers: list
    lam: np.ndarray
    mu_s_per_byte: np.ndarray
    bound_s: float
    metadata: dict = field(default_factory=dict)

    def header(self) -> dict:
        return {"schema": SCHEMA_CERTIFICATE, "schema_version": CERTIFICATE_VERSION,
                "method": METHOD, "instance": self.instance_name,
                "instance_sha256": self.instance_sha256, "mode": self.mode,
                "terms": list(self.terms), "capacity_tiers": [int(k) for k in self.capacity_tiers],
                "bound_s": float(self.bound_s),
                "prices_sha256": prices_digest(self.lam, self.mu_s_per_byte),
                "metadata": self.metadata}

    def to_bytes(self) -> bytes:
        buf = _io.BytesIO()
        np.savez_compressed(buf, header=np.array(json.dumps(self.header(), allow_nan=False)),
                            **{"prices.lambda": np.asarray(self.lam, "<f8"),
                               "prices.mu_s_per_byte": np.asarray(self.mu_s_per_byte, "<f8")})
        return buf.getvalue()

    def save(self, path: str | os.PathLike) -> None:
        """Write the certificate (NPZ) atomically."""
        atomic_write_bytes(path, self.to_bytes())


def load_certificate(path: str | os.PathLike) -> BoundCertificate:
    """Read a certificate file; structural problems raise :class:`CertificateError` naming
    the file, the field and the reason.  (Whether it proves anything: :func:`verify_bound`.)"""
    path = Path(path)
    try:
        return _load_certificate(path)
    except CertificateError as exc:
        raise exc.with_source(str(path)) from None


def _load_certificate(path: Path) -> BoundCertificate:
    if not path.is_file():
        raise CertificateError("(file)", "no such file")
    arrays, header = read_npz_with_header(path, "certificate", CertificateError)
    check_header(header, schema=SCHEMA_CERTIFICATE, versions=CERTIFICATE_VERSION, where="header",
                 error=CertificateError)
    for key, typ in (("instance_sha256", str), ("mode", str), ("terms", list),
                     ("capacity_tiers", list), ("bound_s", (int, float)), ("prices_sha256", str)):
        if key not in header:
            raise CertificateError(key, "missing required key")
        if not isinstance(header[key], typ) or isinstance(header[key], bool):
            raise CertificateError(key, "wrong type")
    for key in ("prices.lambda", "prices.mu_s_per_byte"):
        if key not in arrays:
            raise CertificateError(key, "missing required array")
        if arrays[key].dtype.kind != "f" or arrays[key].ndim != 2:
            raise CertificateError(key, f"must be a 2-D float array, got {arrays[key].dtype} "
                                   f"with {arrays[key].ndim} dimensions")
    return BoundCertificate(
        instance_sha256=header["instance_sha256"], instance_name=str(header.get("instance", "")),
        mode=header["mode"], terms=[str(t) for t in header["terms"]],
        capacity_tiers=list(header["capacity_tiers"]),
        lam=arrays["prices.lambda"].astype(float), mu_s_per_byte=arrays["prices.mu_s_per_byte"].astype(float),
        bound_s=float(header["bound_s"]), metadata=dict(header.get("metadata") or {}) | {
            "prices_sha256": header["prices_sha256"]})


__all__ = ["BoundCertificate", "CERTIFICATE_VERSION", "CertificateError", "METHOD",
           "SCHEMA_CERTIFICATE", "load_certificate", "prices_digest"]
