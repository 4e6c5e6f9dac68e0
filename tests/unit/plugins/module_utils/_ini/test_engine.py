# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import codecs
import pickle
import re

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._ini import engine as _ini

SECRET = "s3cr3t-VALUE-do-not-show"

# 0xFA5C and 0xFA4A are IBM-extension duplicates: they decode, but re-encode as 0xED40 and 0x8754.
NEC_A = b"\xfa\x5c"
NEC_B = b"\xfa\x4a"

FIXTURE = b"".join([
    "; SMAIL 設定ファイル\r\n".encode("cp932"),
    b"\r\n",
    b"[SMAIL]\r\n",
    b"Server = smtp.example.jp \r\n",
    b"  Port=587\r\n",
    "From=差出人 <sender@example.jp>\r\n".encode("cp932"),
    b"; IBM extension: " + NEC_A + b"\r\n",
    b"Signature=" + NEC_A + NEC_B + b"\r\n",
    b"\tUnknownKey\t=\t'quoted'\r\n",
    b"\r\n",
    "; 次のセクション\r\n".encode("cp932"),
    b"[Other]\r\n",
    b"Name" + NEC_A + b"=x\r\n",
    b"LastKey=written by smail",
])


def reference_read(data: bytes, encoding: str = "cp932") -> dict[str, dict[str, str]]:
    """An independent reader following the documented Windows rules (first section/key wins)."""
    for mark, name in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(mark):
            data, encoding = data[len(mark):], name
            break
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in re.split(r"\r\n|\r|\n", data.decode(encoding)):
        line = line.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("["):
            current = line[1:line.index("]")].lower()
            sections.setdefault(current, {})
            continue
        if "=" not in line or current is None:
            continue
        key, value = line.split("=", 1)
        key, value = key.strip().lower(), value.strip()
        if len(value) >= 2 and value[0] in "\"'" and value[-1] == value[0]:
            value = value[1:-1]
        sections[current].setdefault(key, value)
    return sections


def test_fixture_does_not_round_trip_through_unicode():
    assert FIXTURE.decode("cp932").encode("cp932") != FIXTURE


def test_decode_ini_remembers_layout():
    decoded = _ini.decode_ini(FIXTURE)
    assert decoded.encoding == "cp932"
    assert decoded.bom is False
    assert decoded.newline == "\r\n"
    assert b"".join(line.raw + line.raw_eol for line in decoded.lines) == FIXTURE
    assert _ini.decode_ini(b"a=1\nb=2\r\n").newline == "\n"
    assert _ini.decode_ini(b"a=1\rb=2").newline == "\r"
    assert _ini.decode_ini(b"a=1").newline is None


def test_decode_error_names_encoding_and_offset_only():
    with pytest.raises(_ini.IniError) as info:
        _ini.decode_ini(b"[S]\r\nK=\x82")
    assert info.value.field == "file"
    assert "cp932" in info.value.problem
    assert "offset 7" in info.value.problem
    assert "\\x82" not in str(info.value)


def test_unknown_encoding():
    with pytest.raises(_ini.IniError, match="encoding"):
        _ini.read_ini(b"", encoding="no-such-codec")
    with pytest.raises(_ini.IniError, match="encoding"):
        _ini.read_ini(b"", encoding="base64")


def test_read_ini_windows_rules():
    data = (
        b"Loose=before\r\n"
        b"[Sec]\r\n  Key = \"quoted\" \r\nkey=second\r\n;Hidden=no\r\n#Also=no\r\nNoEquals\r\n"
        b"Eq=a=b\r\nSingle='x'\r\nMismatch=\"x'\r\nOne=\"\r\n"
        b"[SEC]\r\nOther=1\r\nKEY=third\r\n[A]B]\r\nZ=1\r\n"
    )
    values = _ini.read_ini(data)
    assert values[""] == {"Loose": "before"}
    assert values["Sec"] == {"Key": "quoted", "Eq": "a=b", "Single": "x", "Mismatch": "\"x'", "One": "\"", "Other": "1"}
    assert "SEC" not in values
    assert values["A"] == {"Z": "1"}
    assert _ini.lookup(values, "sec", "KEY") == "quoted"
    assert _ini.lookup(values, "sec", "missing") is None
    assert _ini.lookup(values, "missing", "key") is None


def test_merge_without_settings_keeps_every_byte():
    result = _ini.merge_ini(FIXTURE, {})
    assert result.data == FIXTURE
    assert result.changed is False
    assert result.updated == []


def test_update_in_place():
    result = _ini.merge_ini(FIXTURE, {"SMAIL": {"Port": "465"}})
    assert result.data == FIXTURE.replace(b"  Port=587\r\n", b"  Port=465\r\n")
    assert result.changed is True
    assert result.updated == ["SMAIL/Port"]
    assert "Port=465" in result.after_text
    assert "Port=587" in result.before_text


def test_update_keeps_original_key_bytes():
    key = (b"Name" + NEC_A).decode("cp932")
    result = _ini.merge_ini(FIXTURE, {"other": {key: "y"}})
    assert result.data == FIXTURE.replace(b"Name" + NEC_A + b"=x\r\n", b"Name" + NEC_A + b"=y\r\n")


def test_update_last_line_without_newline():
    result = _ini.merge_ini(FIXTURE, {"Other": {"LastKey": "new"}})
    assert result.data == FIXTURE[:-len(b"written by smail")] + b"new"


def test_update_normalises_spacing_of_that_line_only():
    result = _ini.merge_ini(FIXTURE, {"SMAIL": {"Server": "smtp.example.com"}})
    assert result.data == FIXTURE.replace(b"Server = smtp.example.jp \r\n", b"Server=smtp.example.com\r\n")


def test_remove_key():
    result = _ini.merge_ini(FIXTURE, {"SMAIL": {"Server": None, "Missing": None}})
    assert result.data == FIXTURE.replace(b"Server = smtp.example.jp \r\n", b"")
    assert result.updated == ["SMAIL/Server"]
    assert _ini.merge_ini(FIXTURE, {"Nowhere": {"Key": None}}).data == FIXTURE


def test_remove_every_duplicate_but_update_only_first():
    data = b"[S]\r\nK=1\r\nK=2\r\n[T]\r\nK=t\r\n[s]\r\nk=3\r\n"
    assert _ini.merge_ini(data, {"S": {"K": None}}).data == b"[S]\r\n[T]\r\nK=t\r\n[s]\r\n"
    assert _ini.merge_ini(data, {"S": {"K": "9"}}).data == b"[S]\r\nK=9\r\nK=2\r\n[T]\r\nK=t\r\n[s]\r\nk=3\r\n"


def test_key_only_in_repeated_section_is_added_to_first_block():
    data = b"[S]\r\nA=1\r\n[T]\r\n[S]\r\nB=2\r\n"
    result = _ini.merge_ini(data, {"S": {"B": "2"}})
    assert result.data == b"[S]\r\nA=1\r\nB=2\r\n[T]\r\n[S]\r\nB=2\r\n"


def test_new_key_goes_after_last_key_of_section():
    result = _ini.merge_ini(FIXTURE, {"SMAIL": {"AuthType": "XOAUTH2"}})
    assert result.data == FIXTURE.replace(b"=\t'quoted'\r\n", b"=\t'quoted'\r\nAuthType=XOAUTH2\r\n")
    assert result.updated == ["SMAIL/AuthType"]


def test_new_key_in_last_section_adds_missing_newline_first():
    result = _ini.merge_ini(FIXTURE, {"Other": {"New": "1"}})
    assert result.data == FIXTURE + b"\r\nNew=1\r\n"


def test_new_key_in_empty_section():
    assert _ini.merge_ini(b"[S]\n\n[T]\n", {"S": {"K": "v"}}).data == b"[S]\nK=v\n\n[T]\n"


def test_new_section_at_end():
    result = _ini.merge_ini(FIXTURE, {"OAUTH": {"ClientID": "id", "Skipped": None, "Scope": "mail"}})
    assert result.data == FIXTURE + b"\r\n\r\n[OAUTH]\r\nClientID=id\r\nScope=mail\r\n"
    assert result.updated == ["OAUTH/ClientID", "OAUTH/Scope"]


def test_new_section_after_trailing_blank_line():
    assert _ini.merge_ini(b"[S]\nK=1\n\n", {"T": {"A": "b"}}).data == b"[S]\nK=1\n\n[T]\nA=b\n"
    assert _ini.merge_ini(b"[S]\nK=1\n", {"T": {"A": "b"}}).data == b"[S]\nK=1\n\n[T]\nA=b\n"


def test_section_with_only_removals_is_not_created():
    assert _ini.merge_ini(None, {"S": {"K": None}}).data == b""


def test_new_file_in_given_order():
    result = _ini.merge_ini(None, {"B": {"Y": "2", "X": "1"}, "A": {"Z": "3"}})
    assert result.data == b"[B]\r\nY=2\r\nX=1\r\n\r\n[A]\r\nZ=3\r\n"
    assert result.changed is True
    assert result.before_text == ""


def test_case_insensitive_match():
    result = _ini.merge_ini(FIXTURE, {"smail": {"PORT": "465"}})
    assert result.data == FIXTURE.replace(b"  Port=587\r\n", b"  Port=465\r\n")
    assert result.updated == ["smail/PORT"]


def test_equal_as_windows_reads_it_is_no_change():
    result = _ini.merge_ini(FIXTURE, {"SMAIL": {"Server": "smtp.example.jp", "UnknownKey": "quoted"}})
    assert result.changed is False
    assert result.data == FIXTURE
    assert result.updated == []


def test_idempotence():
    settings = {
        "SMAIL": {"Port": "465", "Server": None, "AuthType": "XOAUTH2"},
        "other": {"LastKey": "x", "Added": "1"},
        "OAUTH": {"ClientID": "id", "RefreshToken": SECRET},
    }
    first = _ini.merge_ini(FIXTURE, settings)
    assert first.changed is True
    second = _ini.merge_ini(first.data, settings)
    assert second.changed is False
    assert second.data == first.data
    assert second.updated == []


def test_newline_style_of_file_is_used():
    assert _ini.merge_ini(b"[S]\nA=1\n", {"S": {"B": "2"}, "T": {"C": "3"}}).data == b"[S]\nA=1\nB=2\n\n[T]\nC=3\n"
    assert _ini.merge_ini(None, {"S": {"A": "1"}}, newline="\n").data == b"[S]\nA=1\n"
    with pytest.raises(_ini.IniError, match="newline"):
        _ini.merge_ini(None, {}, newline="\n\n")


INJECTIONS = [
    ({"OAUTH": {"RefreshToken": SECRET + "\r\n[Evil]"}}, "settings[OAUTH][RefreshToken]", "line break"),
    ({"OAUTH": {"RefreshToken": SECRET + "\nX=1"}}, "settings[OAUTH][RefreshToken]", "line break"),
    ({"OAUTH": {"RefreshToken": SECRET + "\rX=1"}}, "settings[OAUTH][RefreshToken]", "line break"),
    ({"OAUTH": {"RefreshToken": SECRET + "\u2028"}}, "settings[OAUTH][RefreshToken]", "line break"),
    ({"OAUTH": {"RefreshToken": SECRET + "\u2029"}}, "settings[OAUTH][RefreshToken]", "line break"),
    ({"OAUTH": {"RefreshToken": SECRET + "\x85"}}, "settings[OAUTH][RefreshToken]", "line break"),
    ({"OAUTH": {"RefreshToken": SECRET + "\x00"}}, "settings[OAUTH][RefreshToken]", "NUL"),
    ({"OAUTH": {"RefreshToken": SECRET + "\x07x"}}, "settings[OAUTH][RefreshToken]", "control character"),
    ({"OAUTH": {"RefreshToken": SECRET + "\x7fx"}}, "settings[OAUTH][RefreshToken]", "control character"),
    ({"OAUTH": {"RefreshToken": " " + SECRET}}, "settings[OAUTH][RefreshToken]", "whitespace"),
    ({"OAUTH": {"RefreshToken": SECRET + "\t"}}, "settings[OAUTH][RefreshToken]", "control character"),
    ({"OAUTH": {"RefreshToken": SECRET + "\u3000"}}, "settings[OAUTH][RefreshToken]", "whitespace"),
    ({"OAUTH": {"RefreshToken": '"' + SECRET + '"'}}, "settings[OAUTH][RefreshToken]", "quotes"),
    ({"OAUTH": {"RefreshToken": "'" + SECRET + "'"}}, "settings[OAUTH][RefreshToken]", "quotes"),
    ({"OAUTH": {"RefreshToken": 123}}, "settings[OAUTH][RefreshToken]", "got int"),
    ({"OAUTH": {"RefreshToken": True}}, "settings[OAUTH][RefreshToken]", "got bool"),
    ({"OAUTH": {"Refresh=Token": SECRET}}, "settings[OAUTH][Refresh=Token]", "'='"),
    ({"OAUTH": {"[Evil": SECRET}}, "settings[OAUTH]['[Evil']", "'['"),
    ({"OAUTH": {"Ev]il": SECRET}}, "settings[OAUTH]['Ev]il']", "']'"),
    ({"OAUTH": {";Key": SECRET}}, "settings[OAUTH][;Key]", "comment"),
    ({"OAUTH": {"#Key": SECRET}}, "settings[OAUTH][#Key]", "comment"),
    ({"OAUTH": {"": SECRET}}, "settings[OAUTH]['']", "empty"),
    ({"OAUTH": {" Key": SECRET}}, "settings[OAUTH][' Key']", "whitespace"),
    ({"OAUTH": {"Key\r\nX": SECRET}}, "settings[OAUTH]['Key\\r\\nX']", "line break"),
    ({"OAUTH": {1: SECRET}}, "settings[OAUTH][1]", "must be a string"),
    ({"OAUTH": {"Key": "a", "KEY": SECRET}}, "settings[OAUTH][KEY]", "twice"),
    ({"OA]UTH": {"Key": SECRET}}, "settings['OA]UTH']", "']'"),
    ({"OA[UTH": {"Key": SECRET}}, "settings['OA[UTH']", "'['"),
    ({"": {"Key": SECRET}}, "settings['']", "empty"),
    ({"OAUTH\n[X": {"Key": SECRET}}, "settings['OAUTH\\n[X']", "line break"),
    ({"OAUTH ": {"Key": SECRET}}, "settings['OAUTH ']", "whitespace"),
    ({"OAUTH": {"Key": SECRET}, "oauth": {}}, "settings[oauth]", "twice"),
    ({"OAUTH": SECRET}, "settings[OAUTH]", "mapping"),
]


@pytest.mark.parametrize("settings, field, problem", INJECTIONS)
def test_injection_refused_without_showing_value(settings, field, problem):
    for call in (lambda: _ini.validate_settings(settings), lambda: _ini.merge_ini(FIXTURE, settings)):
        with pytest.raises(_ini.IniError) as info:
            call()
        assert info.value.field == field
        assert problem in info.value.problem
        assert SECRET not in str(info.value)
        assert str(info.value) == f"{field}: {info.value.problem}"
        assert info.value.__cause__ is None


def test_settings_must_be_a_mapping():
    with pytest.raises(_ini.IniError) as info:
        _ini.validate_settings(["x"], field="ini_settings")
    assert info.value.field == "ini_settings"


def test_error_pickles():
    error = pickle.loads(pickle.dumps(_ini.IniError("a", "b")))
    assert (error.field, error.problem, str(error)) == ("a", "b", "a: b")


def test_cp932_is_the_default_encoding():
    result = _ini.merge_ini(None, {"S": {"K": "日本語"}})
    assert result.data == "[S]\r\nK=日本語\r\n".encode("cp932")
    assert result.encoding == "cp932"


def test_value_cp932_cannot_hold():
    value = SECRET + "\U0001f600"
    for call in (lambda: _ini.merge_ini(FIXTURE, {"SMAIL": {"Subject": value}}),
                 lambda: _ini.validate_settings({"SMAIL": {"Subject": value}}, encoding="cp932")):
        with pytest.raises(_ini.IniError) as info:
            call()
        assert info.value.field == "settings[SMAIL][Subject]"
        assert "cp932" in info.value.problem
        assert SECRET not in str(info.value)
        assert "\U0001f600" not in str(info.value)
        assert info.value.__cause__ is None
    assert _ini.merge_ini(None, {"S": {"K": value}}, encoding="utf-8").data.endswith("\U0001f600\r\n".encode())


def test_utf8_without_bom_unless_asked():
    assert _ini.merge_ini(None, {"S": {"K": "é"}}, encoding="utf-8").data == "[S]\r\nK=é\r\n".encode()
    with_bom = _ini.merge_ini(None, {"S": {"K": "é"}}, encoding="utf-8", bom=True)
    assert with_bom.data == codecs.BOM_UTF8 + "[S]\r\nK=é\r\n".encode()
    assert with_bom.bom is True
    assert _ini.merge_ini(None, {"S": {"K": "é"}}, encoding="utf-8-sig").data.startswith(codecs.BOM_UTF8)
    with pytest.raises(_ini.IniError, match="bom"):
        _ini.merge_ini(None, {"S": {"K": "x"}}, bom=True)


def test_existing_utf8_bom_file_keeps_encoding_and_bom():
    data = codecs.BOM_UTF8 + "; コメント\r\n[S]\r\nK=1\r\n".encode()
    result = _ini.merge_ini(data, {"S": {"K": "値"}})
    assert result.data == codecs.BOM_UTF8 + "; コメント\r\n[S]\r\nK=値\r\n".encode()
    assert (result.encoding, result.bom) == ("utf-8", True)
    assert _ini.read_ini(result.data) == {"S": {"K": "値"}}


def test_existing_file_without_bom_never_gains_one():
    assert _ini.merge_ini(b"[S]\nK=1\n", {"S": {"K": "2"}}, encoding="utf-8", bom=True).data == b"[S]\nK=2\n"


@pytest.mark.parametrize("codec, mark", [("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE)])
def test_utf16_with_bom(codec, mark):
    text = "; 日本語\r\n[S]\r\nA = 1 \r\nB=2"
    data = mark + text.encode(codec)
    decoded = _ini.decode_ini(data)
    assert (decoded.encoding, decoded.bom, decoded.newline) == (codec, True, "\r\n")
    result = _ini.merge_ini(data, {"S": {"B": "二", "C": "3"}})
    assert result.data == mark + "; 日本語\r\n[S]\r\nA = 1 \r\nB=二\r\nC=3\r\n".encode(codec)
    assert reference_read(result.data) == {"s": {"a": "1", "b": "二", "c": "3"}}
    assert _ini.merge_ini(result.data, {"S": {"B": "二", "C": "3"}}).changed is False


def test_new_utf16_file_gets_bom():
    result = _ini.merge_ini(None, {"S": {"K": "v"}}, encoding="utf-16")
    assert result.data == codecs.BOM_UTF16_LE + "[S]\r\nK=v\r\n".encode("utf-16-le")


ROUND_TRIP = {
    "SMAIL": {
        "Port": "465",
        "Equals": "a=b=c",
        "Semicolon": "; not a comment",
        "Bracket": "[not a section]",
        "Japanese": "日本語の件名",
        "Empty": "",
        "LeadingQuote": "'x",
        "TrailingQuote": "x\"",
        "Mixed": "\"x'",
        "Quote": "\"",
        "Inner": "a 'b' c",
        "Backslash": "C:\\Program Files\\smail",
    },
    "OAUTH": {"RefreshToken": SECRET, "ClientID": "id.apps.example"},
}


@pytest.mark.parametrize("existing", [None, FIXTURE], ids=["new", "fixture"])
def test_round_trip_with_independent_reader(existing):
    data = _ini.merge_ini(existing, ROUND_TRIP).data
    seen = reference_read(data)
    for section, entries in ROUND_TRIP.items():
        for key, value in entries.items():
            assert seen[section.lower()][key.lower()] == value
    assert _ini.read_ini(data)["OAUTH"]["RefreshToken"] == SECRET


def test_mask_ini_text_hides_secrets():
    text = (
        "Token=top\r\n[OAUTH]\r\nRefreshToken = \"abc\" \r\nrefreshtoken=dup\r\n;RefreshToken=old\r\n"
        "ClientSecret=\r\nClientID=visible\r\n[Other]\r\nClientSecret=cs\r\nSecretish=keep"
    )
    masked = _ini.mask_ini_text(text, [("oauth", "refreshtoken"), "clientsecret", "token"], mask="***")
    assert masked == (
        "Token=***\r\n[OAUTH]\r\nRefreshToken = *** \r\nrefreshtoken=***\r\n;RefreshToken=***\r\n"
        "ClientSecret=\r\nClientID=visible\r\n[Other]\r\nClientSecret=***\r\nSecretish=keep"
    )
    assert _ini.mask_ini_text(text, []) == text
    only_pair = _ini.mask_ini_text(text, [("Other", "ClientSecret")])
    assert "ClientSecret=********\r\nSecretish=keep" in only_pair
    assert "RefreshToken = \"abc\"" in only_pair


def test_mask_ini_text_marks_a_secret_that_changed():
    before = "[OAUTH]\r\nRefreshToken=old\r\nClientSecret=same\r\n"
    after = "[OAUTH]\r\nRefreshToken=new\r\nClientSecret=same\r\nToken=added\r\n"
    masked = _ini.mask_ini_text(after, ["refreshtoken", "clientsecret", "token"], mask="***", changed_from=before)
    assert masked == "[OAUTH]\r\nRefreshToken=*** (changed)\r\nClientSecret=***\r\nToken=*** (changed)\r\n"


def test_mask_merge_diff_never_shows_secret():
    result = _ini.merge_ini(FIXTURE, {"OAUTH": {"RefreshToken": SECRET}})
    secrets = [("OAUTH", "RefreshToken"), ("OAUTH", "ClientSecret")]
    assert SECRET in result.after_text
    assert SECRET not in _ini.mask_ini_text(result.after_text, secrets)
    assert "RefreshToken" in result.updated[0]
    assert SECRET not in " ".join(result.updated)
