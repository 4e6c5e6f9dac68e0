# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

# Reading and merging the INI files SMAIL (smail.exe) and SmailRefreshToken.exe use.
#
# Both programs read their files through Windows' GetPrivateProfileString, so this
# module follows the Windows reading rules rather than Python's configparser:
#
# * leading and trailing blanks of a line are ignored; blank lines are ignored;
# * a line whose first non-blank character is ``[`` starts a section whose name is
#   the text up to the first ``]`` (taken as is, not stripped);
# * a line starting with ``;`` is a comment (``#`` is treated as a comment too);
# * any other line is split at its first ``=``; key and value are stripped of blanks
#   and a value wrapped in matching double or single quotes loses them;
# * section and key names compare case-insensitively; within a section the first
#   occurrence of a key wins, and a repeated section is the same section;
# * keys that appear before the first section belong to the section named ``""``.
#
# Writing is a merge: lines this module does not manage are kept byte for byte, so
# a cp932 file with NEC/IBM duplicate characters, odd spacing or a missing final
# newline comes back exactly as it was, apart from the managed lines.
#
# Only the standard library is used so the code runs on the controller and on
# managed nodes alike.
import codecs
import dataclasses
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError

__all__ = (
    "DEFAULT_ENCODING",
    "DEFAULT_NEWLINE",
    "DecodedIni",
    "IniError",
    "IniLine",
    "MergeResult",
    "decode_ini",
    "lookup",
    "mask_ini_text",
    "merge_ini",
    "read_ini",
    "read_ini_text",
    "validate_settings",
)

DEFAULT_ENCODING = "cp932"
DEFAULT_NEWLINE = "\r\n"

# What Windows' profile reader skips around lines, keys and values: iswspace() plus ^Z (DOS end of file).
_WHITESPACE = (
    " \t\n\v\f\r\x1a\x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_QUOTES = "\"'"
_COMMENT_STARTS = ";#"
_LINE_BREAKS = "\r\n\x85\u2028\u2029"
_NEWLINES = ("\r\n", "\n", "\r")
_TEXT_NEWLINE_RE = re.compile(r"\r\n|\r|\n")
_BYTES_NEWLINE_RE = re.compile(rb"\r\n|\r|\n")
# A BOM overrides the encoding the caller assumed, as it does for Windows.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_BOM_BYTES = {
    "utf-8": codecs.BOM_UTF8,
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
    "utf-32-le": codecs.BOM_UTF32_LE,
    "utf-32-be": codecs.BOM_UTF32_BE,
}
# These codecs write a BOM on every encode() call; pin the byte order and write the BOM once ourselves.
_BOM_WRITING_CODECS = {"utf-8-sig": "utf-8", "utf-16": "utf-16-le", "utf-32": "utf-32-le"}
# If these encode to ASCII bytes the file can be split into lines without decoding it first.
_ASCII_PROBE = "\r\n[]=;# \t"


class IniError(OptionError, ValueError):
    """An INI file or a requested setting that cannot be used safely: bad input, code ``invalid_option``.

    ``field`` names what is wrong (``settings[SMTP][Server]``, ``file``, an option
    name) and is the error's ``option``; ``problem`` says why.  Neither ever contains
    the text of a value, so the message is safe to show even when the value is a secret.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"

    def __reduce__(self) -> tuple[type[IniError], tuple[str, str]]:
        # Keeps the two-argument constructor working across pickling.
        return (type(self), (self.field, self.problem))


@dataclass(frozen=True)
class IniLine:
    """One physical line: its decoded text and the exact bytes it was read from."""

    text: str
    eol: str
    raw: bytes
    raw_eol: bytes


@dataclass(frozen=True)
class DecodedIni:
    """A decoded INI file.

    ``encoding`` is the codec actually used (``utf-8``, ``utf-16-le`` or
    ``utf-16-be`` when a BOM was found), ``bom`` tells whether the file started
    with one, ``newline`` is the first line break found (``None`` if there is none)
    and ``lines`` joined together give back the file after its BOM, byte for byte.
    """

    text: str
    encoding: str
    bom: bool
    newline: str | None
    lines: tuple[IniLine, ...]


@dataclass(frozen=True)
class MergeResult:
    """The outcome of :func:`merge_ini`.

    ``updated`` lists ``Section/Key`` (in the caller's spelling) for every key
    added, changed or removed, and never a value.  ``before_text`` and
    ``after_text`` are the decoded file contents, meant for diffs once passed
    through :func:`mask_ini_text`.
    """

    data: bytes
    changed: bool
    updated: list[str]
    before_text: str
    after_text: str
    encoding: str = DEFAULT_ENCODING
    bom: bool = False
    newline: str = DEFAULT_NEWLINE


@dataclass(frozen=True)
class _Parsed:
    kind: str  # "blank", "comment", "section", "key" or "other"
    name: str = ""
    value: str = ""


_BLANK = _Parsed("blank")
_COMMENT = _Parsed("comment")
_OTHER = _Parsed("other")


def _fold(name: str) -> str:
    """Return the form used to compare section and key names case-insensitively."""
    return name.lower()


def _unquote(value: str) -> str:
    """Return ``value`` as a Windows reader sees it once matching outer quotes are removed."""
    if len(value) >= 2 and value[0] in _QUOTES and value[-1] == value[0]:
        return value[1:-1]
    return value


def _parse_line(text: str) -> _Parsed:
    """Classify one line (without its line break) following the Windows reading rules."""
    line = text.strip(_WHITESPACE)
    if not line:
        return _BLANK
    if line[0] in _COMMENT_STARTS:
        return _COMMENT
    if line[0] == "[":
        end = line.find("]", 1)
        # A '[' line without ']' is neither a section nor a key this module could have written.
        return _Parsed("section", line[1:end]) if end >= 0 else _OTHER
    equals = line.find("=")
    if equals < 0:
        return _OTHER
    key = line[:equals].rstrip(_WHITESPACE)
    if not key:
        return _OTHER
    return _Parsed("key", key, _unquote(line[equals + 1:].lstrip(_WHITESPACE)))


def _split_text(text: str) -> list[tuple[str, str]]:
    """Split ``text`` into (content, line break) pairs on CRLF, LF and CR only."""
    pieces = []
    start = 0
    for match in _TEXT_NEWLINE_RE.finditer(text):
        pieces.append((text[start:match.start()], match.group()))
        start = match.end()
    if start < len(text):
        pieces.append((text[start:], ""))
    return pieces


def _codec(encoding: str, *, field: str = "encoding") -> tuple[str, bool]:
    """Return the canonical codec name for ``encoding`` and whether it implies a BOM."""
    if not isinstance(encoding, str) or not encoding:
        raise IniError(field, "must be a non-empty encoding name")
    try:
        # encode() also refuses bytes-to-bytes codecs such as base64.
        "".encode(encoding)
        name = codecs.lookup(encoding).name
    except LookupError:
        raise IniError(field, f"unknown text encoding {encoding!r}") from None
    if name in _BOM_WRITING_CODECS:
        return _BOM_WRITING_CODECS[name], True
    return name, False


def _newlines_are_ascii(codec: str) -> bool:
    try:
        return _ASCII_PROBE.encode(codec) == _ASCII_PROBE.encode("ascii")
    except UnicodeError:
        return False


def _split_raw(body: bytes, codec: str, text: str) -> list[IniLine] | None:
    """Split ``body`` at byte level so every line keeps its exact bytes; None if the codec does not allow it."""
    pieces = []
    start = 0
    for match in _BYTES_NEWLINE_RE.finditer(body):
        pieces.append((body[start:match.start()], match.group()))
        start = match.end()
    if start < len(body):
        pieces.append((body[start:], b""))
    lines = []
    for raw, raw_eol in pieces:
        try:
            line_text = raw.decode(codec)
        except UnicodeDecodeError:
            return None
        lines.append(IniLine(text=line_text, eol=raw_eol.decode("ascii"), raw=raw, raw_eol=raw_eol))
    # Stateful codecs could decode a line differently on its own than inside the whole file.
    if "".join(line.text + line.eol for line in lines) != text:
        return None
    return lines


def _split_decoded(text: str, codec: str, *, source: str) -> list[IniLine]:
    """Split decoded ``text`` into lines whose bytes are re-encoded (exact for UTF-16)."""
    lines = []
    for content, eol in _split_text(text):
        try:
            lines.append(IniLine(text=content, eol=eol, raw=content.encode(codec), raw_eol=eol.encode(codec)))
        except UnicodeError:
            raise IniError(source, f"cannot be rewritten safely in {codec}") from None
    return lines


def decode_ini(data: bytes, *, encoding: str = DEFAULT_ENCODING, source: str = "file") -> DecodedIni:
    """Decode an INI file the way Windows would.

    A UTF-8 or UTF-16 (LE/BE) BOM overrides ``encoding``.  Undecodable bytes raise
    :class:`IniError` on ``source`` naming the encoding and the byte offset (never
    the bytes).  The returned lines carry their original bytes.
    """
    data = bytes(data)
    codec, _implied_bom = _codec(encoding)
    bom = False
    start = 0
    for mark, name in _BOMS:
        if data.startswith(mark):
            codec, bom, start = name, True, len(mark)
            break
    body = data[start:]
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as exc:
        # "from None": the chained exception would quote the offending bytes, which may belong to a secret.
        raise IniError(source, f"cannot be decoded as {codec} at byte offset {start + exc.start}") from None
    lines = _split_raw(body, codec, text) if _newlines_are_ascii(codec) else None
    if lines is None:
        lines = _split_decoded(text, codec, source=source)
    newline = next((line.eol for line in lines if line.eol), None)
    return DecodedIni(text=text, encoding=codec, bom=bom, newline=newline, lines=tuple(lines))


def _collect(parsed: Iterable[_Parsed]) -> dict[str, dict[str, str]]:
    """Build section -> key -> value as a Windows reader sees them (first spelling, first value wins)."""
    result: dict[str, dict[str, str]] = {}
    spelling: dict[str, str] = {}
    seen: dict[str, set[str]] = {}
    current: str | None = None

    def enter(name: str) -> str:
        spelled = spelling.setdefault(_fold(name), name)
        result.setdefault(spelled, {})
        seen.setdefault(_fold(name), set())
        return spelled

    for item in parsed:
        if item.kind == "section":
            current = enter(item.name)
        elif item.kind == "key":
            if current is None:
                current = enter("")
            keys = seen[_fold(current)]
            if _fold(item.name) not in keys:
                keys.add(_fold(item.name))
                result[current][item.name] = item.value
    return result


def read_ini_text(text: str) -> dict[str, dict[str, str]]:
    """Return the values a Windows reader sees in decoded INI ``text``; see :func:`read_ini`."""
    return _collect(_parse_line(content) for content, _eol in _split_text(text))


def read_ini(data: bytes, *, encoding: str = DEFAULT_ENCODING, source: str = "file") -> dict[str, dict[str, str]]:
    """Return section -> key -> value as a Windows reader sees them.

    Names keep their first-seen spelling; repeated sections are merged and the
    first occurrence of a key wins.  Keys before the first section appear under
    ``""``.  Use :func:`lookup` for case-insensitive access.
    """
    decoded = decode_ini(data, encoding=encoding, source=source)
    return _collect(_parse_line(line.text) for line in decoded.lines)


def _entries(values: Mapping[str, Mapping[str, str]], section: str) -> Mapping[str, str] | None:
    folded = _fold(section)
    return next((entries for name, entries in values.items() if _fold(name) == folded), None)


def _get(entries: Mapping[str, str], key: str) -> str | None:
    folded = _fold(key)
    return next((value for name, value in entries.items() if _fold(name) == folded), None)


def lookup(values: Mapping[str, Mapping[str, str]], section: str, key: str) -> str | None:
    """Return the value of ``key`` in ``section`` of :func:`read_ini` output, case-insensitively, or None."""
    entries = _entries(values, section)
    return None if entries is None else _get(entries, key)


def _label(name: object) -> str:
    """Return ``name`` for use in a field path, quoted when it could be misread."""
    if isinstance(name, str) and name and name == name.strip(_WHITESPACE) and all(
            ch.isprintable() and ch not in "[]'\"" for ch in name):
        return name
    return repr(name)


def _character_problem(text: str) -> str | None:
    """Return what makes ``text`` unsafe on an INI line, or None."""
    for char in text:
        if char in _LINE_BREAKS:
            return "contains a line break"
        if char == "\x00":
            return "contains a NUL character"
        category = unicodedata.category(char)
        if category == "Cc":
            return "contains a control character"
        if category == "Cs":
            return "contains an unpaired surrogate"
    return None


def _has_outer_blank(text: str) -> bool:
    return text != text.strip(_WHITESPACE) or text[:1].isspace() or text[-1:].isspace()


def _check_section(section: object, *, field: str) -> str:
    label = f"{field}[{_label(section)}]"
    if not isinstance(section, str):
        raise IniError(label, f"section name must be a string, got {type(section).__name__}")
    if not section:
        raise IniError(label, "section name is empty")
    problem = _character_problem(section)
    if problem:
        raise IniError(label, f"section name {problem}")
    if "[" in section or "]" in section:
        raise IniError(label, "section name contains '[' or ']'")
    if _has_outer_blank(section):
        raise IniError(label, "section name has leading or trailing whitespace")
    return label


def _check_key(key: object, *, field: str) -> str:
    label = f"{field}[{_label(key)}]"
    if not isinstance(key, str):
        raise IniError(label, f"key name must be a string, got {type(key).__name__}")
    if not key:
        raise IniError(label, "key name is empty")
    problem = _character_problem(key)
    if problem:
        raise IniError(label, f"key name {problem}")
    for char in "[]=":
        if char in key:
            raise IniError(label, f"key name contains {char!r}")
    if key[0] in _COMMENT_STARTS:
        raise IniError(label, "key name starts with a comment character")
    if _has_outer_blank(key):
        raise IniError(label, "key name has leading or trailing whitespace")
    return label


def _check_value(value: object, *, field: str) -> None:
    # Messages below describe the value, never quote it: it may be a secret.
    if value is None:
        return
    if not isinstance(value, str):
        raise IniError(field, f"value must be a string or None, got {type(value).__name__}")
    problem = _character_problem(value)
    if problem:
        raise IniError(field, f"value {problem}")
    if _has_outer_blank(value):
        raise IniError(field, "value has leading or trailing whitespace, which a Windows INI reader would strip")
    if _unquote(value) != value:
        raise IniError(field, "value is wrapped in matching quotes, which a Windows INI reader would strip")


def _check_encodable(settings: Mapping[str, Mapping[str, str | None]], *, codec: str, field: str) -> None:
    """Refuse any name or value that ``codec`` cannot write and read back unchanged."""
    for section, entries in settings.items():
        section_label = f"{field}[{_label(section)}]"
        try:
            section.encode(codec)
        except UnicodeError:
            raise IniError(section_label, f"section name cannot be encoded as {codec}") from None
        for key, value in entries.items():
            key_label = f"{section_label}[{_label(key)}]"
            try:
                key.encode(codec)
            except UnicodeError:
                raise IniError(key_label, f"key name cannot be encoded as {codec}") from None
            if value is None:
                continue
            try:
                exact = value.encode(codec).decode(codec) == value
            except UnicodeError:
                # "from None": the codec's own message would quote the character, which may belong to a secret.
                raise IniError(key_label, f"value contains characters that cannot be encoded as {codec}") from None
            if not exact:
                raise IniError(key_label, f"value would not read back unchanged from {codec}")


def validate_settings(settings: Mapping[str, Mapping[str, str | None]], *, field: str = "settings", encoding: str | None = None) -> None:
    """Refuse settings that could inject lines or be read back differently.

    Raises :class:`IniError` naming ``field[Section][Key]`` for: names or values
    with line breaks (CR, LF, NEL, U+2028, U+2029), NUL or other control
    characters; empty names; ``[`` or ``]`` in a section name; ``[``, ``]`` or
    ``=`` in a key; keys starting with ``;`` or ``#``; names or values with
    leading or trailing whitespace; values wrapped in matching quotes; values
    that are not ``str`` (``None`` means "remove the key"); two sections or two
    keys of a section differing only in case.  With ``encoding`` it also refuses
    what that encoding cannot hold.
    """
    if not isinstance(settings, Mapping):
        raise IniError(field, "must be a mapping of section names to mappings of keys")
    sections: set[str] = set()
    for section, entries in settings.items():
        section_label = _check_section(section, field=field)
        if _fold(section) in sections:
            raise IniError(section_label, "section given twice (names are case-insensitive)")
        sections.add(_fold(section))
        if not isinstance(entries, Mapping):
            raise IniError(section_label, "must be a mapping of keys to values")
        keys: set[str] = set()
        for key, value in entries.items():
            key_label = _check_key(key, field=section_label)
            if _fold(key) in keys:
                raise IniError(key_label, "key given twice (names are case-insensitive)")
            keys.add(_fold(key))
            _check_value(value, field=key_label)
    if encoding is not None:
        _check_encodable(settings, codec=_codec(encoding)[0], field=field)


def _make_line(text: str, eol: str, codec: str) -> IniLine:
    return IniLine(text=text, eol=eol, raw=text.encode(codec), raw_eol=eol.encode(codec))


def _raw_prefix(line: IniLine, prefix: str, codec: str) -> bytes:
    """Return the original bytes of ``prefix`` (the start of ``line``), so a key spelled with e.g. 0xFA5C keeps it."""
    try:
        size = len(prefix.encode(codec))
        if line.raw[:size].decode(codec) == prefix:
            return line.raw[:size]
    except UnicodeError:
        pass
    return prefix.encode(codec)


def _rewrite_value(line: IniLine, value: str, codec: str) -> IniLine:
    """Return ``line`` with its value replaced, keeping its indentation, key bytes and line break."""
    text = line.text
    equals = text.index("=")
    prefix = text[:len(text[:equals].rstrip(_WHITESPACE))]
    tail = "=" + value
    return IniLine(text=prefix + tail, eol=line.eol, raw=_raw_prefix(line, prefix, codec) + tail.encode(codec), raw_eol=line.raw_eol)


@dataclass(frozen=True)
class _Layout:
    """Where the sections and keys of an existing file are, by line index."""

    parsed: tuple[_Parsed, ...]
    owner: tuple[int, ...]  # block index of each line, -1 before the first section
    folds: tuple[str, ...]  # folded name of each block (one block per section header)
    anchor: tuple[int, ...]  # per block: last header, key or other non-comment line; new keys go after it
    first_block: Mapping[str, int]  # folded section name -> its first block

    def key_lines(self, section: str, key: str) -> list[int]:
        """Return the indexes of every line setting ``key`` in any block of ``section``."""
        section_fold, key_fold = _fold(section), _fold(key)
        return [index for index, item in enumerate(self.parsed)
                if item.kind == "key" and self.owner[index] >= 0 and self.folds[self.owner[index]] == section_fold
                and _fold(item.name) == key_fold]


def _layout(lines: tuple[IniLine, ...]) -> _Layout:
    parsed = tuple(_parse_line(line.text) for line in lines)
    owner: list[int] = []
    folds: list[str] = []
    anchor: list[int] = []
    for index, item in enumerate(parsed):
        if item.kind == "section":
            folds.append(_fold(item.name))
            anchor.append(index)
        elif item.kind in ("key", "other") and folds:
            anchor[-1] = index
        owner.append(len(folds) - 1)
    first_block: dict[str, int] = {}
    for block, folded in enumerate(folds):
        first_block.setdefault(folded, block)
    return _Layout(parsed=parsed, owner=tuple(owner), folds=tuple(folds), anchor=tuple(anchor), first_block=first_block)


@dataclass(frozen=True)
class _Plan:
    """The edits a merge makes: replaced or dropped lines, lines inserted after an index, new sections."""

    replaced: dict[int, IniLine | None]
    inserted: dict[int, list[IniLine]]
    new_sections: list[tuple[str, list[tuple[str, str]]]]
    updated: list[str]


def _plan(lines: tuple[IniLine, ...], settings: Mapping[str, Mapping[str, str | None]], *, codec: str, newline: str) -> _Plan:
    """Decide, line by line, what merging ``settings`` into ``lines`` changes."""
    layout = _layout(lines)
    plan = _Plan(replaced={}, inserted={}, new_sections=[], updated=[])
    for section, entries in settings.items():
        target = layout.first_block.get(_fold(section))
        if target is None:
            wanted = [(key, value) for key, value in entries.items() if value is not None]
            if wanted:
                plan.new_sections.append((section, wanted))
                plan.updated.extend(f"{section}/{key}" for key, _value in wanted)
            continue
        for key, value in entries.items():
            hits = layout.key_lines(section, key)
            if value is None:
                # Remove every occurrence, in repeated sections too, so no reader can still find the key.
                plan.replaced.update(dict.fromkeys(hits))
                if hits:
                    plan.updated.append(f"{section}/{key}")
                continue
            # Only the first block of a section counts: a key in a later repeat is not reliably seen by Windows.
            first = next((index for index in hits if layout.owner[index] == target), None)
            if first is None:
                plan.inserted.setdefault(layout.anchor[target], []).append(_make_line(f"{key}={value}", newline, codec))
            elif layout.parsed[first].value == value:
                continue
            else:
                plan.replaced[first] = _rewrite_value(lines[first], value, codec)
            plan.updated.append(f"{section}/{key}")
    return plan


def _assemble(lines: tuple[IniLine, ...], plan: _Plan, *, codec: str, newline: str) -> list[IniLine]:
    """Return ``lines`` with ``plan`` applied; untouched lines are the very same objects."""
    result: list[IniLine] = []
    for index, line in enumerate(lines):
        replacement = plan.replaced.get(index, line)
        if replacement is not None:
            result.append(replacement)
        result.extend(plan.inserted.get(index, ()))
    for section, wanted in plan.new_sections:
        if result and _parse_line(result[-1].text).kind != "blank":
            result.append(_make_line("", newline, codec))
        result.append(_make_line(f"[{section}]", newline, codec))
        result.extend(_make_line(f"{key}={value}", newline, codec) for key, value in wanted)
    # Only the file's original last line can lack a line break; give it one if something now follows it.
    for index in range(len(result) - 1):
        if not result[index].eol:
            result[index] = dataclasses.replace(result[index], eol=newline, raw_eol=newline.encode(codec))
    return result


def merge_ini(existing: bytes | None, settings: Mapping[str, Mapping[str, str | None]], *,
              encoding: str = DEFAULT_ENCODING, newline: str = DEFAULT_NEWLINE, bom: bool = False,
              field: str = "settings", source: str = "file") -> MergeResult:
    """Merge ``settings`` (section -> key -> value, None removes the key) into an INI file.

    Promises:

    * every line not touched by ``settings`` keeps its exact bytes and position;
    * a managed key is updated in place on its first occurrence in the first block
      of its section (indentation and key bytes kept, ``Key=Value`` after that),
      and left alone when a Windows reader already sees the wanted value;
    * ``None`` removes every occurrence of the key in every block of the section;
    * a new key goes right after the last key line of the first block of its
      section, i.e. before blank lines and comments leading to the next section;
    * a new section goes at the end of the file after a blank line; sections whose
      values are all None are not created;
    * new lines use the file's first line break, else ``newline``; a file lacking a
      final line break gets one only when a line is added after its last line;
    * an existing file with a BOM keeps its encoding and BOM; otherwise
      ``encoding`` is used; ``bom`` (or an encoding such as ``utf-8-sig``) only
      applies to a new or empty file;
    * ``existing`` None or empty means a new file with sections in the given order.

    Everything is validated before anything is produced; problems raise
    :class:`IniError` naming ``field[Section][Key]`` (settings) or ``source`` (file).
    """
    validate_settings(settings, field=field)
    if newline not in _NEWLINES:
        raise IniError("newline", "must be CRLF, LF or CR")
    codec, implied_bom = _codec(encoding)
    if existing is None or not existing:
        decoded = DecodedIni(text="", encoding=codec, bom=bool(bom or implied_bom), newline=None, lines=())
    else:
        decoded = decode_ini(existing, encoding=encoding, source=source)
    codec = decoded.encoding
    if decoded.bom and codec not in _BOM_BYTES:
        raise IniError("bom", f"{codec} has no byte order mark")
    _check_encodable(settings, codec=codec, field=field)
    line_break = decoded.newline or newline
    plan = _plan(decoded.lines, settings, codec=codec, newline=line_break)
    lines = _assemble(decoded.lines, plan, codec=codec, newline=line_break)
    data = (_BOM_BYTES[codec] if decoded.bom else b"") + b"".join(line.raw + line.raw_eol for line in lines)
    return MergeResult(
        data=data,
        changed=existing is None or data != bytes(existing),
        updated=plan.updated,
        before_text=decoded.text,
        after_text="".join(line.text + line.eol for line in lines),
        encoding=codec,
        bom=decoded.bom,
        newline=line_break,
    )


def _secret_sets(secret_keys: Iterable[tuple[str, str]] | Iterable[str]) -> tuple[set[tuple[str, str]], set[str]]:
    if isinstance(secret_keys, str):
        secret_keys = [secret_keys]
    pairs: set[tuple[str, str]] = set()
    anywhere: set[str] = set()
    for item in secret_keys:
        if isinstance(item, str):
            anywhere.add(_fold(item))
        elif isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(part, str) for part in item):
            pairs.add((_fold(item[0]), _fold(item[1])))
        else:
            raise IniError("secret_keys", "entries must be key names or (section, key) pairs")
    return pairs, anywhere


def _commented_key(content: str) -> str | None:
    """Return the key of a commented-out ``;Key=Value`` line, or None."""
    line = content.strip(_WHITESPACE)
    while line and line[0] in _COMMENT_STARTS:
        line = line[1:].lstrip(_WHITESPACE)
    equals = line.find("=")
    key = line[:equals].rstrip(_WHITESPACE) if equals > 0 else ""
    return key or None


def _mask_value(content: str, mask: str) -> str:
    start = content.index("=") + 1
    while start < len(content) and content[start] in _WHITESPACE:
        start += 1
    end = len(content.rstrip(_WHITESPACE))
    if end <= start:
        # An empty value reveals nothing; leaving it shows that the secret is unset.
        return content
    return content[:start] + mask + content[end:]


def _secret_lines(text: str, pairs: set[tuple[str, str]], anywhere: set[str]) -> Iterable[tuple[str, str, bool]]:
    """Each line of ``text`` as (content, line break, whether it holds the value of a secret key)."""
    section = ""
    for content, eol in _split_text(text):
        item = _parse_line(content)
        key = None
        if item.kind == "section":
            section = _fold(item.name)
        elif item.kind == "key":
            key = item.name
        elif item.kind == "comment":
            key = _commented_key(content)
        yield content, eol, key is not None and (_fold(key) in anywhere or (section, _fold(key)) in pairs)


def mask_ini_text(text: str, secret_keys: Iterable[tuple[str, str]] | Iterable[str], *, mask: str = "********",
                  changed_from: str | None = None) -> str:
    """Return ``text`` with the value of every secret key replaced by ``mask``.

    ``secret_keys`` holds ``(section, key)`` pairs and/or bare key names (any
    section), compared case-insensitively.  Every occurrence is masked, including
    repeats and commented-out ``;Key=Value`` lines; empty values stay empty.  All
    other text, line breaks included, is unchanged.

    With ``changed_from`` (the text before a change), a secret line that is not in it word for word shows
    ``mask`` followed by `` (changed)``, so that a diff of the two masked texts still shows the line that changed.
    """
    pairs, anywhere = _secret_sets(secret_keys)
    if not pairs and not anywhere:
        return text
    before = ({content.strip(_WHITESPACE) for content, _eol, secret in _secret_lines(changed_from, pairs, anywhere) if secret}
              if changed_from is not None else None)
    output = []
    for content, eol, secret in _secret_lines(text, pairs, anywhere):
        if secret:
            changed = before is not None and content.strip(_WHITESPACE) not in before
            content = _mask_value(content, f"{mask} (changed)" if changed else mask)
        output.append(content + eol)
    return "".join(output)
