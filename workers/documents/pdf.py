"""PDF text extraction with pypdf, always inside a sandboxed child (see `sandbox`).

`read_pdf` is the parent's half: it hands the bytes to a child through a private temp file and gets
back only the page texts. `extract_pages` is the child's half; it imports pypdf itself, so the parent
never loads the parser, let alone the inflated content.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from workers.documents.model import LimitsSpec
from workers.documents.sandbox import ChildLimits, error_result, run_in_child

CHILD_MODULE: Final = "workers.documents.pdf_child"
# JSON may spend up to 6 bytes on one character (a \\uXXXX escape); the rest is the envelope.
_OUTPUT_BYTES_PER_CHAR: Final = 6
_OUTPUT_OVERHEAD_BYTES: Final = 1024 * 1024
# pypdf reports page-tree cycles as a LimitReachedError; those files are broken, not big.
_STRUCTURAL_LIMIT_WORDS: Final = ("cycle", "loop", "self reference")


@dataclass(frozen=True)
class PdfText:
    """Raw text of each page, in order, as pypdf extracted it."""

    pages: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def read_pdf(data: bytes, *, password: str | None, limits: LimitsSpec) -> PdfText:
    """Extract every page's text in a sandboxed child; raises DocumentError (or ConfigError)."""
    child_limits = ChildLimits(
        timeout_s=limits.timeout_s,
        memory_mb=limits.memory_mb,
        output_bytes=limits.max_chars * _OUTPUT_BYTES_PER_CHAR + _OUTPUT_OVERHEAD_BYTES,
    )
    # mkdtemp makes the directory 0700: the document and its text are readable by us alone.
    with tempfile.TemporaryDirectory(prefix="abstractor-pdf-") as tmp:
        workdir = Path(tmp)
        input_path = workdir / "input.pdf"
        input_path.write_bytes(data)
        payload = {
            "path": str(input_path),
            "password": password,
            "max_pages": limits.max_pages,
            "max_chars": limits.max_chars,
        }
        run = run_in_child(CHILD_MODULE, payload, limits=child_limits, workdir=workdir)
    return PdfText(pages=tuple(run.payload["pages"]), warnings=tuple(run.payload.get("warnings", ())))


def extract_pages(payload: dict[str, Any]) -> dict[str, Any]:
    """Child side: open the PDF, unlock it, check page and character limits, extract text page by page."""
    # Imported here, after the rlimits are set: the parser never runs unconfined.
    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError

    # pypdf logs and warns with fragments of the file; none of it may reach any log.
    logging.getLogger("pypdf").setLevel(logging.CRITICAL + 1)
    warnings.simplefilter("ignore")
    # Never shell out to an external decoder from inside the sandbox.
    pypdf.overwrite_configuration(jbig2dec_binary=None)

    password: str | None = payload["password"]
    max_pages: int = payload["max_pages"]
    max_chars: int = payload["max_chars"]
    try:
        reader = pypdf.PdfReader(payload["path"])
        if reader.is_encrypted and not _unlock(reader, password):
            if password is None:
                return error_result("encrypted", password_given=False)
            return error_result(
                "encrypted", "The password given does not open this encrypted PDF.", password_given=True
            )
        count = len(reader.pages)
        if count > max_pages:
            return error_result(
                "too_large",
                f"The PDF has {count} pages; the limit is {max_pages}.",
                limit="max_pages",
                max=max_pages,
                actual=count,
            )
        texts: list[str] = []
        total = 0
        for page in reader.pages:
            text = page.extract_text()
            total += len(text)
            if total > max_chars:
                return error_result(
                    "too_large",
                    f"The PDF holds more than the limit of {max_chars} characters of text.",
                    limit="max_chars",
                    max=max_chars,
                )
            texts.append(text)
    except FileNotDecryptedError:
        return error_result("encrypted", password_given=password is not None)
    except LimitReachedError as e:
        if any(word in str(e).lower() for word in _STRUCTURAL_LIMIT_WORDS):
            return error_result("invalid_pdf", exception=type(e).__name__)
        return error_result(
            "too_large",
            "The PDF exceeds the parser's safety limits (for example a stream that inflates too far).",
            limit="parser",
            exception=type(e).__name__,
        )
    except DependencyError as e:
        # The deployment lacks an optional decoder (e.g. `cryptography` for AES): not the file's fault.
        return error_result("config_error", f"A PDF decoder is missing: {e}", exception=type(e).__name__)
    except MemoryError:
        raise
    except RecursionError:
        return error_result("invalid_pdf", "The PDF's structure is nested too deeply.", exception="RecursionError")
    except Exception as e:  # noqa: BLE001 - a parser fed hostile input fails in every way; each means "bad PDF"
        return error_result("invalid_pdf", exception=type(e).__name__)
    return {"ok": {"pages": texts}}


def _unlock(reader: Any, password: str | None) -> bool:
    """Try the empty user password first (many PDFs only restrict printing), then the one given."""
    from pypdf import PasswordType

    if reader.decrypt("") != PasswordType.NOT_DECRYPTED:
        return True
    return password is not None and reader.decrypt(password) != PasswordType.NOT_DECRYPTED
