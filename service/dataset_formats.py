"""Reading uploaded datasets: CSV (pyarrow, checked by an exact parser), NPY and NPZ files.

Plain functions over binary file objects (a request's stream, an open file), so that they can
be tested, and their memory measured, without a request. Each returns ``(X, y)``: 2-D arrays
of the chosen dtype, C-contiguous, finite.
"""

import codecs
import csv
import io
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

try:
    # Freed chunks go back to the system at once, not a second later: the upload's peak
    # memory is then its arrays and about one chunk.
    pa.jemalloc_set_decay_ms(0)
except NotImplementedError:  # a pyarrow built without jemalloc frees through malloc
    pass

from backprop.exceptions import SpecError
from backprop.spec import as_dtype

DTYPES = ("float64", "float32")
# CSV rows are parsed this many at a time into a float64 block, then copied into X and y.
BLOCK_ROWS = 4096
# Longer lines are refused rather than read into memory whole.
MAX_LINE_BYTES = 1 << 20
# Bodies are spooled to disk in chunks of this size before parsing.
SPOOL_CHUNK = 1 << 20
# The fast CSV path parses the body in pieces of whole lines, small beside the arrays they fill:
# this many bytes of text per byte of a stored value, so 2 MiB for float64 and 1 MiB for float32
# (the text and its parsed table take the same memory whatever the arrays' dtype). Each piece is
# cut into blocks that pyarrow parses one per thread: with its default 1 MiB blocks, a 1 MiB
# piece ran on one core. Measured on 2 cores in interleaved rounds, float64 (a 94 MB file):
# 2 MiB pieces 0.23-0.26 s, peak memory 1.16x the arrays; 1 MiB pieces 0.22-0.68 s in 512 KiB
# blocks, 0.41-0.51 s in one block. float32 (67 MB): 1 MiB pieces in 512 KiB blocks 1.25x;
# 2 MiB pieces 1.36-1.51x, over the 1.5 the tests hold it to.
ARROW_TEXT_BYTES_PER_VALUE_BYTE = 1 << 18
ARROW_MIN_BLOCK_BYTES = 1 << 18
# Arrays are first sized for this much more than the rows the first lines predict: pages
# never written are never resident, and the shrink at the end gives the rest back.
ROW_ESTIMATE_MARGIN = 1.05
# A buffer that is full grows by half: the old rows stay where they are when realloc can
# extend the block in place, and never more than a third of the final size is spare.
GROWTH = 1.5


class DatasetError(ValueError):
    """An upload that cannot be read as a dataset.

    Attributes:
        field: what is wrong: ``body``, ``target`` or ``dtype``.
        message: in words the uploader can act on.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DatasetTooLarge(DatasetError):
    """The parsed arrays would pass the size limit."""

    def __init__(self, limit: int):
        super().__init__("body", f"The dataset is larger than {limit:,} bytes as arrays.")


def split_targets(values: list[str], names: Collection[str] | None = None) -> list[str]:
    """``target`` query values, each a name or a comma-separated list of names.

    A value that is itself one of ``names`` is kept whole, so a column whose name holds a
    comma can still be named.
    """
    out = []
    for value in values:
        if names is not None and value in names:
            out.append(value)
        else:
            out.extend(part.strip() for part in value.split(",") if part.strip())
    return out


class _Rows:
    """A (rows, width) array that grows as blocks of rows are appended."""

    def __init__(
        self, width: int, dtype: np.dtype, max_bytes: int | None, capacity: int = BLOCK_ROWS
    ):
        if max_bytes is not None:
            capacity = min(capacity, max_bytes // max(1, width * dtype.itemsize) + 1)
        self.data = np.empty((max(1, capacity), width), dtype)
        self.n = 0
        self.max_bytes = max_bytes

    def append(self, block: np.ndarray) -> np.ndarray:
        """Copy ``block`` (k, width) in, cast to this dtype; returns the rows as stored."""
        stored = self._reserve(len(block))
        with np.errstate(over="ignore"):  # float32 overflow is reported by the caller
            stored[...] = block
        return stored

    def append_columns(self, columns: list[np.ndarray]) -> np.ndarray:
        """Copy ``width`` columns of k values each in, cast; returns the rows as stored.

        Column by column, so no (k, width) block is made on the way.
        """
        stored = self._reserve(len(columns[0]))
        with np.errstate(over="ignore", invalid="ignore"):
            for j, column in enumerate(columns):
                stored[:, j] = column
        return stored

    def _reserve(self, k: int) -> np.ndarray:
        """The next ``k`` rows, growing the buffer if need be."""
        end = self.n + k
        capacity, width = self.data.shape
        if end > capacity:
            if self.max_bytes is not None and end * width * self.data.itemsize > self.max_bytes:
                raise DatasetTooLarge(self.max_bytes)
            # In place, so the full buffer and its larger successor never both exist.
            self.data.resize((max(end, int(capacity * GROWTH)), width), refcheck=False)
        stored = self.data[self.n : end]
        self.n = end
        return stored

    def finish(self) -> np.ndarray:
        self.data.resize((self.n, self.data.shape[1]), refcheck=False)
        return self.data


class _Lines:
    """The lines of a UTF-8 byte stream as text, for ``csv.reader``.

    Decoding line by line keeps the line number of a bad byte exact. Keeps the lines of the
    record being read, and the header's names once known, for error messages.
    """

    def __init__(self, binary):
        self.binary = binary
        self.number = 0
        self.record: list[str] = []
        self.names: list[str] = []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        raw = self.binary.readline(MAX_LINE_BYTES + 1)
        if not raw:
            raise StopIteration
        self.number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise DatasetError("body", f"line {self.number}: longer than {MAX_LINE_BYTES} bytes")
        if self.number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DatasetError("body", f"line {self.number}: not UTF-8 text") from None
        self.record.append(line)
        return line


def _bad_field(record: str) -> int:
    """The 0-based index of the field where a CSV record stops making sense."""
    field, i = 0, 0
    while True:
        if record.startswith('"', i):
            end = i + 1
            while True:
                end = record.find('"', end)
                if end < 0:
                    return field  # the quote is never closed
                if not record.startswith('"', end + 1):
                    break
                end += 2  # a doubled quote inside the field
            i = end + 1
            if i < len(record) and record[i] not in ",\r\n":
                return field  # text after the closing quote
        comma = record.find(",", i)
        if comma < 0:
            return field
        field, i = field + 1, comma + 1


def _column(names: list[str], index: int) -> str:
    return f"column {names[index]!r}" if index < len(names) else f"column {index + 1}"


def _cell_error(line: int, names, row: list[str], block_row=None, dtype=None) -> DatasetError:
    """The first cell of ``row`` that is not a finite number (in ``dtype``)."""
    for i, cell in enumerate(row):
        where = f"line {line}, {_column(names, i)}"
        try:
            value = float(cell)
        except ValueError:
            what = "empty" if not cell.strip() else f"{cell!r} is not a number"
            return DatasetError("body", f"{where}: {what}")
        if not np.isfinite(value):
            return DatasetError("body", f"{where}: {cell!r} is not a finite number")
        if dtype is not None and block_row is not None and not np.isfinite(block_row[i]):
            return DatasetError("body", f"{where}: {cell!r} is out of range for {dtype}")
    return DatasetError("body", f"line {line}: a value is not a finite number")


def _check_columns(n: int, max_columns: int | None, what: str) -> None:
    if max_columns is not None and n > max_columns:
        raise DatasetError(
            "body", f"{what} has {n:,} columns; at most {max_columns:,} are allowed."
        )


def _header(
    reader, lines: _Lines, targets: list[str], max_columns: int | None
) -> tuple[list[str], list[int], list[int]]:
    """Column names, target column indices and feature column indices."""
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError("body", "The CSV is empty: it needs a header row.") from None
    names = [name.strip() for name in header]
    lines.record.clear()
    lines.names = names
    _check_columns(len(names), max_columns, "line 1: the header")
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name:
            raise DatasetError("body", f"line 1, column {i + 1}: the header names no column")
        if name in index:
            raise DatasetError("body", f"line 1, column {name!r}: the name appears twice")
        index[name] = i
    targets = split_targets(targets, index)
    if not targets:
        raise DatasetError("target", "Name the target column(s): ?target=y or ?target=y1,y2.")
    unknown = [t for t in targets if t not in index]
    if unknown:
        raise DatasetError("target", f"No column {unknown[0]!r}; the header has {names}.")
    y_cols = [index[t] for t in dict.fromkeys(targets)]
    targeted = set(y_cols)
    x_cols = [i for i in range(len(names)) if i not in targeted]
    if not x_cols:
        raise DatasetError("target", "Every column is a target; at least one must be an input.")
    return names, y_cols, x_cols


def read_csv(
    stream,
    targets: list[str],
    dtype: str = "float64",
    max_bytes: int | None = None,
    max_columns: int | None = None,
):
    """Parse a CSV with a header row into ``(X, y)``.

    The body is spooled to a temporary file, then parsed by pyarrow's CSV reader block by
    block into the growing arrays (``read_csv_arrow``). Anything that reader refuses, or
    that comes out non-finite, is parsed again by ``read_csv_exact``, which is the reference:
    it either finds the same rows (pyarrow is stricter about spaces and Python's number
    syntax) or names the line and column at fault.

    Args:
        stream: a binary file object of UTF-8 text (a leading byte-order mark is skipped);
            it is read, not closed.
        targets: names of the target columns (see ``split_targets``); the rest are inputs.
        dtype: ``float64`` or ``float32``.
        max_bytes: the most bytes X and y may take together.
        max_columns: the most columns the header may name.

    Raises:
        DatasetError: naming the line and column of the first problem.
        DatasetTooLarge: past ``max_bytes``.
    """
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(stream, spool, SPOOL_CHUNK)
        size = spool.tell()
        spool.seek(0)
        try:
            return read_csv_arrow(spool, size, targets, dtype, max_bytes, max_columns)
        except _NotFast:
            spool.seek(0)
            return read_csv_exact(spool, targets, dtype, max_bytes, max_columns)


class _NotFast(Exception):
    """pyarrow could not read the rows as finite numbers: let the exact parser say why."""


def read_csv_arrow(spool, size: int, targets, dtype="float64", max_bytes=None, max_columns=None):
    """``read_csv``'s fast path over a seekable file of ``size`` bytes.

    The header is read by ``csv.reader``, as ``read_csv_exact`` reads it (the same errors).
    The rows are cut into chunks of whole lines (``_piece_bytes`` at most), each parsed by
    pyarrow on all cores and copied into the arrays. So beside X and y only a chunk and its
    table are held: the arrays are sized from the file's bytes per line up front (pages never
    written are never resident) and shrunk at the end.

    Raises:
        _NotFast: pyarrow refused a chunk, a line is longer than ``MAX_LINE_BYTES``, or a value
            is not finite (in ``dtype``).
    """
    dtype = np.dtype(dtype)
    piece = _piece_bytes(dtype)
    lines = _Lines(spool)
    reader = csv.reader(lines, strict=True)
    try:
        names, y_cols, x_cols = _header(reader, lines, targets, max_columns)
    except csv.Error:
        raise _NotFast from None
    capacity = _estimate_rows(spool, size - spool.tell())
    X = _Rows(len(x_cols), dtype, max_bytes, capacity)
    y = _Rows(len(y_cols), dtype, max_bytes, capacity)
    columns = [f"c{i}" for i in range(len(names))]
    options = {
        "read_options": pa_csv.ReadOptions(column_names=columns, block_size=_block_bytes(piece)),
        "parse_options": pa_csv.ParseOptions(newlines_in_values=False),
        "convert_options": pa_csv.ConvertOptions(
            column_types=dict.fromkeys(columns, pa.float64()),
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    }
    for chunk in _line_chunks(spool, piece):
        try:
            table = pa_csv.read_csv(pa.py_buffer(chunk), **options)
        except pa.ArrowException:
            raise _NotFast from None
        for buffer, cols in ((X, x_cols), (y, y_cols)):
            # NaN and infinity stay so when cast; a float32 overflow becomes infinity.
            stored = buffer.append_columns([table.column(i).to_numpy() for i in cols])
            if not np.isfinite(stored).all():
                raise _NotFast
        del table
    return _finish(X, y, max_bytes)


def _piece_bytes(dtype: np.dtype) -> int:
    """The text parsed at a time into ``dtype`` arrays."""
    return ARROW_TEXT_BYTES_PER_VALUE_BYTE * dtype.itemsize


def _block_bytes(piece: int) -> int:
    """pyarrow's block size: a piece's share for each thread of pyarrow's pool (one per CPU),
    ``ARROW_MIN_BLOCK_BYTES`` at least."""
    return max(ARROW_MIN_BLOCK_BYTES, piece // (os.cpu_count() or 1))


def _finish(X: "_Rows", y: "_Rows", max_bytes: int | None):
    """X and y as parsed, once the last row is in; both parsers end here."""
    if X.n == 0:
        raise DatasetError("body", "The CSV has a header but no rows.")
    X_out, y_out = X.finish(), y.finish()
    if max_bytes is not None and X_out.nbytes + y_out.nbytes > max_bytes:
        raise DatasetTooLarge(max_bytes)
    return X_out, y_out


def _line_chunks(spool, piece: int):
    """The rest of ``spool`` in pieces of whole lines, about ``piece`` bytes each
    (views, not copies).

    Raises:
        _NotFast: a line is longer than ``MAX_LINE_BYTES``.
    """
    rest = b""
    while data := spool.read(piece):
        if rest:
            data = rest + data
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        if len(rest) > MAX_LINE_BYTES:
            raise _NotFast
        if cut:
            yield memoryview(data)[:cut]
    if rest:
        yield rest


def _estimate_rows(spool, remaining: int) -> int:
    """Rows in the ``remaining`` bytes of ``spool``, from the lines of its next 64 KiB."""
    start = spool.tell()
    sample = spool.read(1 << 16)
    spool.seek(start)
    newlines = sample.count(b"\n")
    if not newlines:
        return BLOCK_ROWS
    return int(remaining / (len(sample) / newlines) * ROW_ESTIMATE_MARGIN) + 1


def read_csv_exact(
    stream,
    targets: list[str],
    dtype: str = "float64",
    max_bytes: int | None = None,
    max_columns: int | None = None,
):
    """``read_csv`` in Python's ``csv`` module, line by line: slower, and exact about where
    a problem is. The text is parsed ``BLOCK_ROWS`` rows at a time, so beside the growing
    arrays only one block of text and numbers is held.

    Raises:
        DatasetError: naming the line and column of the first problem.
        DatasetTooLarge: past ``max_bytes``.
    """
    dtype = np.dtype(dtype)
    lines = _Lines(stream if isinstance(stream, io.BufferedIOBase) else io.BufferedReader(stream))
    reader = csv.reader(lines, strict=True)
    try:
        return _read_rows(reader, lines, targets, dtype, max_bytes, max_columns)
    except csv.Error as exc:
        column = _column(lines.names, _bad_field("".join(lines.record)))
        raise DatasetError(
            "body", f"line {lines.number}, {column}: malformed CSV ({exc})"
        ) from None


def _read_rows(reader, lines: _Lines, targets, dtype: np.dtype, max_bytes, max_columns):
    names, y_cols, x_cols = _header(reader, lines, targets, max_columns)
    width = len(names)
    # Each of X and y gets the whole limit; their sum is checked at the end.
    X, y = _Rows(len(x_cols), dtype, max_bytes), _Rows(len(y_cols), dtype, max_bytes)
    block = np.empty((BLOCK_ROWS, width))
    rows: list[list[str]] = []
    line_numbers: list[int] = []

    def flush():
        k = len(rows)
        if not k:
            return
        numbers = block[:k]
        if not np.isfinite(numbers).all():
            r = int(np.argwhere(~np.isfinite(numbers))[0][0])
            raise _cell_error(line_numbers[r], names, rows[r])
        for buffer, cols in ((X, x_cols), (y, y_cols)):
            stored = buffer.append(numbers[:, cols])
            if dtype != np.float64 and not np.isfinite(stored).all():
                r = int(np.argwhere(~np.isfinite(stored))[0][0])
                raise _cell_error(line_numbers[r], names, rows[r], _cast(numbers[r], dtype), dtype)
        rows.clear()
        line_numbers.clear()

    for row in reader:
        lines.record.clear()
        if not row:
            continue  # a blank line
        line = reader.line_num
        if len(row) != width:
            if len(row) < width:
                message = f"missing: the row has {len(row)} values, the header {width}"
                raise DatasetError("body", f"line {line}, {_column(names, len(row))}: {message}")
            message = f"the row has {len(row)} values, the header {width}"
            raise DatasetError("body", f"line {line}, column {width + 1}: extra value: {message}")
        try:
            block[len(rows)] = row
        except ValueError:
            raise _cell_error(line, names, row) from None
        rows.append(row)
        line_numbers.append(line)
        if len(rows) == BLOCK_ROWS:
            flush()
    flush()
    return _finish(X, y, max_bytes)


def _cast(values, dtype: np.dtype) -> np.ndarray:
    """``values`` as a C-contiguous array of ``dtype``; what overflows becomes infinite."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(values, dtype=dtype)


# -- NumPy files -------------------------------------------------------------------------

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats
# float128 (longdouble) is a float too, but neither dtype we store needs its range.
MAX_ITEMSIZE = 8
# Elements an array may have before its byte count overflows NumPy's index type (int64).
MAX_ARRAY_ELEMENTS = 2**63 // MAX_ITEMSIZE


def read_numpy(
    stream,
    targets: list[str],
    dtype: str = "float64",
    max_bytes: int | None = None,
    max_columns: int | None = None,
):
    """Read ``(X, y)`` from an .npz holding arrays ``X`` and ``y`` (y may be 1-D), or from an
    .npy 2-D array whose target columns are given as 0-based indices in ``targets``.

    The body is spooled to a temporary file first: an .npz is a zip file, which is read from
    its end. Nothing is unpickled.

    Raises:
        DatasetError: not such a file, wrong arrays or shapes, non-numeric or non-finite data.
        DatasetTooLarge: X and y would take more than ``max_bytes``.

    X and y together may have at most ``max_columns`` columns.
    """
    dtype = np.dtype(dtype)
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(stream, spool, 1 << 20)
        spool.seek(0)
        magic = spool.read(len(NPY_MAGIC))
        spool.seek(0)
        try:
            if magic == NPY_MAGIC:
                return _from_npy(spool, targets, dtype, max_bytes, max_columns)
            if magic.startswith(ZIP_MAGIC):
                return _from_npz(spool, targets, dtype, max_bytes, max_columns)
        except DatasetError:
            raise
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise DatasetError("body", f"Not a readable .npy or .npz file: {exc}") from None
    raise DatasetError("body", "Send NumPy's .npy or .npz format as application/octet-stream.")


def _check_size(headers, dtype: np.dtype, max_bytes: int | None) -> None:
    """The arrays of ``headers`` (``[(shape, stored dtype)]``) fit ``max_bytes`` both as
    stored (loading reads them whole) and as converted to ``dtype``."""
    if max_bytes is None:
        return
    stored = sum(math.prod(shape) * array_dtype.itemsize for shape, array_dtype in headers)
    converted = sum(math.prod(shape) for shape, _ in headers) * dtype.itemsize
    if stored > max_bytes or converted > max_bytes:
        raise DatasetTooLarge(max_bytes)


def _finite(array: np.ndarray, name: str, dtype: np.dtype) -> np.ndarray:
    try:
        return as_dtype(array, dtype, name)
    except SpecError as exc:
        raise DatasetError("body", f"{name}: {exc.message}.") from None


def _read_header(fp, name: str) -> tuple[tuple, bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from an .npy header, before any data is allocated,
    after checking that the shape is one an array can have and the dtype one we convert.

    Args:
        name: how the uploader knows the array, for messages.
    """
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, array_dtype = np.lib.format.read_array_header_1_0(fp)
    else:
        shape, fortran, array_dtype = np.lib.format.read_array_header_2_0(fp)
    # NumPy takes any integers here: a dimension of 2**63 overflows its index type, a
    # negative one is no size at all.
    if any(n < 0 for n in shape) or math.prod(shape) >= MAX_ARRAY_ELEMENTS:
        raise DatasetError("body", f"{name} has the shape {shape}, which no array can have.")
    if not (array_dtype.kind in NUMERIC_KINDS and array_dtype.itemsize <= MAX_ITEMSIZE):
        raise DatasetError(
            "body",
            f"{name} holds {array_dtype} values; send booleans, integers or floats "
            f"of at most 64 bits.",
        )
    return shape, fortran, array_dtype


def _from_npy(spool, targets: list[str], dtype: np.dtype, max_bytes, max_columns):
    shape, fortran, array_dtype = _read_header(spool, "The array")
    if len(shape) != 2 or shape[0] == 0 or shape[1] < 2:
        raise DatasetError(
            "body", f"The .npy array must be 2-D with rows and at least two columns, not {shape}."
        )
    n_cols = shape[1]
    _check_columns(n_cols, max_columns, "The .npy array")
    parts = split_targets(targets)
    if not parts:
        raise DatasetError("target", "Give the target column indices: ?target=3 or ?target=3,4.")
    if not all(p.isdigit() and int(p) < n_cols for p in parts):
        raise DatasetError("target", f"Target columns are indices from 0 to {n_cols - 1}.")
    y_cols = list(dict.fromkeys(int(p) for p in parts))
    targeted = set(y_cols)
    x_cols = [i for i in range(n_cols) if i not in targeted]
    if not x_cols:
        raise DatasetError("target", "Every column is a target; at least one must be an input.")
    # Mapped, not read; the columns taken below are copied as stored, then converted.
    _check_size([(shape, array_dtype)], dtype, max_bytes)
    order = "F" if fortran else "C"
    array = np.memmap(spool, array_dtype, "r", spool.tell(), shape, order)
    X = _finite(array[:, x_cols], "X", dtype)
    y = _finite(array[:, y_cols], "y", dtype)
    return X, y


def _npz_member_header(npz, name: str) -> tuple[tuple, np.dtype]:
    """The shape and stored dtype in an .npz member's header, read before any data is."""
    with npz.zip.open(f"{name}.npy") as member:
        shape, _, array_dtype = _read_header(member, f"The .npz member {name}.npy")
    return shape, array_dtype


def _from_npz(spool, targets: list[str], dtype: np.dtype, max_bytes, max_columns):
    if targets:
        raise DatasetError("target", "An .npz names its arrays X and y itself; leave target out.")
    with np.load(spool, allow_pickle=False) as npz:
        if sorted(npz.files) != ["X", "y"]:
            raise DatasetError(
                "body", f"The .npz must hold exactly the arrays X and y; it holds {npz.files}."
            )
        _check_size([_npz_member_header(npz, name) for name in ("X", "y")], dtype, max_bytes)
        X, y = npz["X"], npz["y"]
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    if X.ndim != 2 or y.ndim != 2 or 0 in X.shape or 0 in y.shape:
        raise DatasetError(
            "body", f"X and y must be non-empty 2-D arrays; they are {X.shape} and {y.shape}."
        )
    if X.shape[0] != y.shape[0]:
        raise DatasetError("body", f"y has {y.shape[0]} rows, X has {X.shape[0]}.")
    _check_columns(X.shape[1] + y.shape[1], max_columns, "X and y together")
    return _finite(X, "X", dtype), _finite(y, "y", dtype)


@dataclass(frozen=True)
class StreamedFormat:
    """A dataset upload format read from the request stream.

    Attributes:
        read: ``read(stream, targets, dtype, max_bytes, max_columns) -> (X, y)``; raises
            ``DatasetError`` naming the field, ``DatasetTooLarge`` past ``max_bytes``.
        openapi: the request body's schema in the OpenAPI document.
    """

    read: Callable
    openapi: dict


# POST /v1/datasets takes these media types (and JSON, which its schema reads); a new format
# is a reader above and an entry here.
STREAMED_FORMATS = {
    "text/csv": StreamedFormat(
        read_csv, {"type": "string", "description": "A header row, then a row per sample."}
    ),
    "application/octet-stream": StreamedFormat(read_numpy, {"type": "string", "format": "binary"}),
}
