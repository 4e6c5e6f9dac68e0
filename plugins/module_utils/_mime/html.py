# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An HTML body's companions: its plain-text alternative, and the inline images it shows (``cid:``) in a
``multipart/related`` with it.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import os
import re
import typing as t
from email.message import MIMEPart
from html.parser import HTMLParser

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError

_CONTENT_ID = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]+$")
_MIME_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`{|}~-]+$")  # RFC 2045 token


class InlineImage(t.Protocol):
    """An image of an HTML body, as ``_smtp.message.InlineImage`` holds it."""

    @property
    def path(self) -> str: ...

    @property
    def cid(self) -> str: ...

    @property
    def mime_type(self) -> str | None: ...


def relate_inline_images(html_part: MIMEPart, images: t.Sequence[InlineImage]) -> None:
    """Turn the ``text/html`` part ``html_part`` into a ``multipart/related`` (RFC 2387, ``type="text/html"``) of the
    HTML and each image, as a base64 ``image/*`` part with ``Content-ID: <cid>`` and ``Content-Disposition: inline``,
    which the HTML shows with ``<img src="cid:...">`` (RFC 2392). Raise OptionError naming ``inline[N].path``,
    ``inline[N].cid`` or ``inline[N].mime_type`` - before anything is changed - for a file that cannot be read, a
    Content-ID that is not one or is given twice, or a type that is not an image's."""
    parts = [_inline_part(index, image, earlier=images[:index]) for index, image in enumerate(images)]
    for image, (maintype, subtype, data) in zip(images, parts):
        html_part.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{image.cid}>", disposition="inline",
                              filename=os.path.basename(image.path))
    html_part.set_param("type", "text/html")


def _inline_part(index: int, image: InlineImage, *, earlier: t.Sequence[InlineImage]) -> tuple[str, str, bytes]:
    """The checked type and the bytes of one inline image."""
    option = f"inline[{index}]"
    if not image.cid or not _CONTENT_ID.match(image.cid):
        raise OptionError(f"{option}.cid", f"{image.cid!r} is not a Content-ID: give it without angle brackets, of "
                                           "letters, digits and !#$%&'*+-/=?^_`{|}~.@ only")
    for position, other in enumerate(earlier):
        if other.cid == image.cid:
            raise OptionError(f"{option}.cid", f"{image.cid!r} is already the cid of inline[{position}]")
    name = os.path.basename(image.path)
    if "\x00" in name or len(f"{name}.".splitlines()) > 1:
        raise OptionError(f"{option}.path", f"the file name {name!r} contains a line break or NUL")
    maintype, subtype = _image_type(option, image)
    try:
        with open(image.path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise OptionError(f"{option}.path", f"cannot read {image.path!r}: {exc.strerror}") from None
    return maintype, subtype, data


def _image_type(option: str, image: InlineImage) -> tuple[str, str]:
    if image.mime_type is not None:
        maintype, _slash, subtype = image.mime_type.strip().lower().partition("/")
        if maintype != "image" or not _MIME_TOKEN.match(subtype):
            raise OptionError(f"{option}.mime_type", f"{image.mime_type!r} is not an image type such as image/png; "
                                                     "attach sends other files")
        return maintype, subtype
    import mimetypes  # pylint: disable=import-outside-toplevel  # only a mail with images pays for its tables

    guessed, encoding = mimetypes.guess_type(image.path)
    if guessed is None or encoding is not None:
        raise OptionError(f"{option}.mime_type", f"is required: the type of {image.path!r} cannot be guessed from its "
                                                 "name (set it, for example image/png)")
    maintype, _slash, subtype = guessed.partition("/")
    if maintype != "image":
        raise OptionError(f"{option}.path", f"{image.path!r} is not an image by its name ({guessed}); inline takes "
                                            "images an HTML body shows, attach sends other files")
    return maintype, subtype


# --- the text alternative of an HTML body ----------------------------------------------------

class _TextFromHTML(HTMLParser):
    _BLOCKS: t.ClassVar[set[str]] = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append("\t")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """A readable plain-text rendering of an HTML body, for the text alternative."""
    parser = _TextFromHTML()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text + "\n"
