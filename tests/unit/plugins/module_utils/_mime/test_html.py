# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The inline images of an HTML body."""

from __future__ import annotations

import base64
from email.message import EmailMessage

import pytest
from mime_messages import new_message, parsed, wire  # pylint: disable=import-error

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._mime import html as _html
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.message import InlineImage

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,"


class TestInlineImages:
    def html_message(self, html: str = '<p><img src="cid:logo"></p>') -> EmailMessage:
        msg = new_message()
        msg.set_content("text\n")
        msg.add_alternative(html, subtype="html")
        return msg

    def images(self, tmp_path, *specs):
        images = []
        for name, data, cid, mime_type in specs:
            path = tmp_path / name
            if data is not None:
                path.write_bytes(data)
            images.append(InlineImage(path=str(path), cid=cid, mime_type=mime_type))
        return images

    def test_the_html_and_its_images_become_one_related_part(self, tmp_path):
        msg = self.html_message('<p><img src="cid:logo"><img src="cid:chart.1@example.com"></p>')
        images = self.images(tmp_path, ("logo.png", PNG, "logo", None), ("chart", GIF, "chart.1@example.com", "image/gif"))
        _html.relate_inline_images(msg.get_body(("html",)), images)
        back = parsed(wire(msg))
        assert back.get_content_type() == "multipart/alternative"
        text, related = back.get_payload()
        assert text.get_content_type() == "text/plain"
        assert related.get_content_type() == "multipart/related"
        # RFC 2387: the type parameter names the root part, which comes first.
        assert related.get_param("type") == "text/html"
        root, logo, chart = related.get_payload()
        assert root.get_content_type() == "text/html" and 'src="cid:logo"' in root.get_content()
        assert (logo.get_content_type(), logo["Content-ID"], logo.get_content_disposition(), logo.get_filename()) == (
            "image/png", "<logo>", "inline", "logo.png")
        assert (chart.get_content_type(), chart["Content-ID"], chart.get_content_disposition()) == (
            "image/gif", "<chart.1@example.com>", "inline")
        assert logo.get_content() == PNG and chart.get_content() == GIF
        assert logo["Content-Transfer-Encoding"] == "base64"
        # get_body() finds the HTML inside the related part, as mail clients do.
        assert back.get_body(("html",)) is root

    @pytest.mark.parametrize(("spec", "option", "problem"), [
        (("missing.png", None, "logo", None), "inline[1].path", "cannot read"),
        (("report.pdf", b"%PDF-1.7", "logo", None), "inline[1].path", "not an image by its name (application/pdf)"),
        (("logo.noext", PNG, "logo", None), "inline[1].mime_type", "cannot be guessed"),
        (("logo.png", PNG, "logo", "text/html"), "inline[1].mime_type", "not an image type"),
        (("logo.png", PNG, "logo", "image/"), "inline[1].mime_type", "not an image type"),
        (("logo.svgz", PNG, "logo", None), "inline[1].mime_type", "cannot be guessed"),
        (("logo.png", PNG, "<logo>", None), "inline[1].cid", "without angle brackets"),
        (("logo.png", PNG, "my logo", None), "inline[1].cid", "is not a Content-ID"),
        (("logo.png", PNG, "", None), "inline[1].cid", "is not a Content-ID"),
        (("logo.png", PNG, "first", None), "inline[1].cid", "already the cid of inline[0]"),
        (("lo\u2028go.png", PNG, "logo", None), "inline[1].path", "line break"),
    ])
    def test_bad_images_name_the_option_and_leave_the_message_alone(self, tmp_path, spec, option, problem):
        msg = self.html_message()
        before = wire(msg)
        images = self.images(tmp_path, ("first.png", PNG, "first", None), spec)
        with pytest.raises(OptionError) as info:
            _html.relate_inline_images(msg.get_body(("html",)), images)
        assert info.value.option == option and problem in info.value.problem
        assert wire(msg) == before
