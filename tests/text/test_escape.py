"""write_html_escaped and write_json_string: byte-for-byte the stdlib, and XSS-safe."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from electron import Buffer, BufferClosed, BufferPool
from electron._text import html_escape, json_string

# Any code point, lone surrogates included (hypothesis leaves them out by default).
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
# Text dense in the characters that matter, mixed with multi-byte ones.
special_text = st.lists(
    st.sampled_from(
        [
            "&",
            "<",
            ">",
            '"',
            "'",
            "a",
            "é",
            "☃",
            "\U0001f600",
            "&amp;",
            "\\",
            "\n",
            "\x00",
            "\x1f",
            "\x7f",
            "\u2028",
            "\ud800",
            "\udfff",
        ]
    ),
    max_size=30,
).map("".join)
text_st = any_text | special_text
_SURROGATE = re.compile("[\ud800-\udfff]")
clean_text = st.text(max_size=40)  # hypothesis leaves out surrogates by default


def _outcome(fn: Callable[[], bytes]) -> bytes | type[BaseException]:
    try:
        return fn()
    except (UnicodeError, TypeError, ValueError) as exc:
        return type(exc)


def _written(write: Callable[[Buffer], int]) -> bytes | type[BaseException]:
    """What ``write`` appends to a buffer holding a prefix; nothing on failure."""
    buf = Buffer(4)
    buf.write(b"<prefix>")
    try:
        n = write(buf)
    except (UnicodeError, TypeError, ValueError) as exc:
        assert buf.getvalue() == b"<prefix>"  # a failed write writes nothing
        return type(exc)
    value = buf.getvalue()
    assert value.startswith(b"<prefix>")
    assert n == len(value) - len(b"<prefix>")
    return value[len(b"<prefix>") :]


# -- HTML -------------------------------------------------------------------------------------


@given(s=text_st)
def test_html_escape_matches_stdlib(s: str) -> None:
    expected = _outcome(lambda: html.escape(s).encode())
    assert _written(lambda b: b.write_html_escaped(s)) == expected
    assert _outcome(lambda: html_escape(s)) == expected


# A representative selection of the OWASP XSS Filter Evasion Cheat Sheet vectors.
OWASP_VECTORS = [
    "<SCRIPT SRC=https://cdn.jsdelivr.net/gh/Moksh45/host-xss.rocks/index.js></SCRIPT>",
    "javascript:/*--></title></style></textarea></script></xmp>"
    "<svg/onload='+/\"/+/onmouseover=1/+/[*/[]/+alert(1)//'>",
    "<IMG SRC=\"javascript:alert('XSS');\">",
    "<IMG SRC=javascript:alert('XSS')>",
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    "<IMG SRC=javascript:alert(&quot;XSS&quot;)>",
    "<IMG SRC=`javascript:alert(\"RSnake says, 'XSS'\")`>",
    '<a onmouseover="alert(document.cookie)">xxs link</a>',
    "<a onmouseover=alert(document.cookie)>xxs link</a>",
    '<IMG """><SCRIPT>alert("XSS")</SCRIPT>"\\>',
    "<IMG SRC=javascript:alert(String.fromCharCode(88,83,83))>",
    "<IMG SRC=# onmouseover=\"alert('xxs')\">",
    '<IMG SRC=/ onerror="alert(String.fromCharCode(88,83,83))"></img>',
    '<img src=x onerror="&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114'
    "&#0000105&#0000112&#0000116&#0000058&#0000097&#0000108&#0000101&#0000114&#0000116"
    '&#0000040&#0000039&#0000088&#0000083&#0000083&#0000039&#0000041">',
    "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;"
    "&#101;&#114;&#116;&#40;&#39;&#88;&#83;&#83;&#39;&#41;>",
    "<IMG SRC=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A&#x61&#x6C&#x65&#x72"
    "&#x74&#x28&#x27&#x58&#x53&#x53&#x27&#x29>",
    "<IMG SRC=\"jav\tascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x09;ascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x0A;ascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x0D;ascript:alert('XSS');\">",
    '<IMG SRC=java\x00script:alert("XSS")>',
    "<IMG SRC=\" &#14;  javascript:alert('XSS');\">",
    '<SCRIPT/XSS SRC="http://xss.rocks/xss.js"></SCRIPT>',
    '<BODY onload!#$%&()*~+-_.,:;?@[/|\\]^`=alert("XSS")>',
    '<SCRIPT/SRC="http://xss.rocks/xss.js"></SCRIPT>',
    '<<SCRIPT>alert("XSS");//\\<</SCRIPT>',
    "<SCRIPT SRC=http://xss.rocks/xss.js?< B >",
    "<SCRIPT SRC=//xss.rocks/.j>",
    "<IMG SRC=\"`<javascript:alert>`('XSS')\"",
    "<iframe src=http://xss.rocks/scriptlet.html <",
    "\\\";alert('XSS');//",
    '</TITLE><SCRIPT>alert("XSS");</SCRIPT>',
    '<INPUT TYPE="IMAGE" SRC="javascript:alert(\'XSS\');">',
    "<BODY BACKGROUND=\"javascript:alert('XSS')\">",
    "<IMG DYNSRC=\"javascript:alert('XSS')\">",
    "<STYLE>li {list-style-image: url(\"javascript:alert('XSS')\");}</STYLE><UL><LI>XSS</br>",
    "<svg/onload=alert('XSS')>",
    "<BODY ONLOAD=alert('XSS')>",
    "<BGSOUND SRC=\"javascript:alert('XSS');\">",
    '<LINK REL="stylesheet" HREF="javascript:alert(\'XSS\');">',
    "<STYLE>@import'http://xss.rocks/xss.css';</STYLE>",
    '<META HTTP-EQUIV="refresh" CONTENT="0;url=javascript:alert(\'XSS\');">',
    '<META HTTP-EQUIV="refresh" CONTENT="0;url=data:text/html base64,'
    'PHNjcmlwdD5hbGVydCgnWFNTJyk8L3NjcmlwdD4K">',
    "<IFRAME SRC=\"javascript:alert('XSS');\"></IFRAME>",
    "<TABLE BACKGROUND=\"javascript:alert('XSS')\">",
    "<DIV STYLE=\"background-image: url(javascript:alert('XSS'))\">",
    "<DIV STYLE=\"width: expression(alert('XSS'));\">",
    "<!--[if gte IE 4]><SCRIPT>alert('XSS');</SCRIPT><![endif]-->",
    "<BASE HREF=\"javascript:alert('XSS');//\">",
    '<OBJECT TYPE="text/x-scriptlet" DATA="http://xss.rocks/scriptlet.html"></OBJECT>',
    '<SCRIPT a=">" SRC="httx://xss.rocks/xss.js"></SCRIPT>',
    '<SCRIPT a=`>` SRC="httx://xss.rocks/xss.js"></SCRIPT>',
    '<A HREF="http://%77%77%77%2E%67%6F%6F%67%6C%65%2E%63%6F%6D">XSS</A>',
    '<A HREF="http://0x42.0x0000066.0x7.0x93/">XSS</A>',
    "<A HREF=\"javascript:document.location='http://www.google.com/'\">XSS</A>",
    "'';!--\"<XSS>=&{()}",
    "<IMG SRC=\"javascript:alert('XSS')\"",
    "<img src=x onerror=alert(1)//",
    "&lt;script&gt;alert(1)&lt;/script&gt;",  # already-escaped text must be escaped again
    "\uff1cscript\uff1ealert(1)\uff1c/script\uff1e",  # fullwidth brackets: not markup
    "\u003cscript\u003e",
    "%3Cscript%3Ealert(1)%3C/script%3E",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '" onfocus="alert(1)" autofocus="',
    "' onfocus='alert(1)' autofocus='",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<x onclick=alert(1)>clé ☃ \U0001f600</x>",
]
_ENTITY = re.compile(rb"&(?:amp|lt|gt|quot|#x27);")


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.data: list[str] = []
        self.other: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self.tags.append(("/" + tag, []))

    def handle_data(self, data: str) -> None:
        self.data.append(data)

    def handle_comment(self, data: str) -> None:  # pragma: no cover - a failure path
        self.other.append(data)

    def handle_decl(self, decl: str) -> None:  # pragma: no cover - a failure path
        self.other.append(decl)


def _assert_inert(s: str) -> None:
    """``s`` escaped into text and into a quoted attribute parses back to exactly ``s``."""
    buf = Buffer()
    buf.write(b'<p title="')
    buf.write_html_escaped(s)
    buf.write(b"\" data-x='")
    buf.write_html_escaped(s)
    buf.write(b"'>")
    start = len(buf)
    buf.write_html_escaped(s)
    escaped = buf.getvalue()[start:]
    buf.write(b"</p>")
    assert not re.search(rb"[<>\"']", escaped), escaped
    assert _ENTITY.sub(b"", escaped).count(b"&") == 0, escaped
    parser = _Collect()
    parser.feed(buf.decode())
    parser.close()
    assert parser.tags == [("p", [("title", s), ("data-x", s)]), ("/p", [])]
    assert "".join(parser.data) == s
    assert parser.other == []


@pytest.mark.parametrize("vector", OWASP_VECTORS)
def test_owasp_vectors_are_inert(vector: str) -> None:
    _assert_inert(vector)
    assert html.unescape(html_escape(vector).decode()) == vector


@given(s=clean_text | special_text.filter(lambda s: not _SURROGATE.search(s)))
def test_any_text_is_inert(s: str) -> None:
    _assert_inert(s)


def test_html_escape_refuses_non_str() -> None:
    buf = Buffer()
    with pytest.raises(TypeError):
        buf.write_html_escaped(b"<b>")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        buf.write_html_escaped(None)  # type: ignore[arg-type]
    assert len(buf) == 0


# -- JSON -------------------------------------------------------------------------------------


@given(s=text_st)
def test_json_string_matches_json_dumps(s: str) -> None:
    assert _written(lambda b: b.write_json_string(s)) == json.dumps(s).encode()
    assert json_string(s) == json.dumps(s).encode()
    if not _SURROGATE.search(s):  # json.loads joins an escaped surrogate pair into one
        assert json.loads(json_string(s)) == s


@given(s=text_st)
def test_json_string_without_ensure_ascii_matches_json_dumps(s: str) -> None:
    expected = _outcome(lambda: json.dumps(s, ensure_ascii=False).encode())
    assert _written(lambda b: b.write_json_string(s, ensure_ascii=False)) == expected
    assert _outcome(lambda: json_string(s, False)) == expected


@pytest.mark.parametrize(
    ("s", "out"),
    [
        ("", b'""'),
        ('"', b'"\\""'),
        ("\\", b'"\\\\"'),
        ("\n\r\t\b\f", b'"\\n\\r\\t\\b\\f"'),
        ("\x00\x1f\x7f", b'"\\u0000\\u001f\\u007f"'),
        ("é☃", b'"\\u00e9\\u2603"'),
        ("\U0001f600", b'"\\ud83d\\ude00"'),
        ("\ud800", b'"\\ud800"'),
        ("</script>", b'"</script>"'),  # as json.dumps: not an HTML escaper
    ],
)
def test_json_string_examples(s: str, out: bytes) -> None:
    buf = Buffer()
    assert buf.write_json_string(s) == len(out)
    assert buf.getvalue() == out


def test_json_string_str_subclass_and_non_str() -> None:
    class Name(str):
        pass

    buf = Buffer()
    buf.write_json_string(Name('a"b'))
    assert buf.getvalue() == json.dumps(Name('a"b')).encode()
    with pytest.raises(TypeError):
        buf.write_json_string(1)  # type: ignore[arg-type]


def test_writers_on_a_returned_buffer_raise() -> None:
    pool = BufferPool()
    buf = pool.get(16)
    pool.put(buf)
    with pytest.raises(BufferClosed):
        buf.write_html_escaped("x")
    with pytest.raises(BufferClosed):
        buf.write_json_string("x")
