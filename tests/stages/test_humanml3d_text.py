import pytest

from stages.humanml3d_text import CaptionError, parse_caption_line, split_caption_lines

LINE = "a man kicks with his left leg.#a/DET man/NOUN kick/VERB with/ADP his/DET left/ADJ leg/NOUN#{}#{}"


def test_whole_clip_caption():
    cap = parse_caption_line(LINE.format("0.0", "0.0").encode())
    assert cap.whole_clip and cap.caption == "a man kicks with his left leg."
    assert cap.tokens[2] == "kick/VERB"


def test_nan_span_means_whole_clip():
    assert parse_caption_line(LINE.format("nan", "nan").encode()).whole_clip


def test_span_caption():
    cap = parse_caption_line(LINE.format("1.5", "4.0").encode())
    assert not cap.whole_clip and (cap.start, cap.end) == (1.5, 4.0)


def test_caption_with_hash_in_text_keeps_text():
    cap = parse_caption_line(b"a person does move #2.#a/DET person/NOUN#0.0#0.0")
    assert cap.caption == "a person does move #2."


@pytest.mark.parametrize(
    "raw,reason",
    [
        (b"", "empty_caption"),
        (b"   ", "empty_caption"),
        (b"no fields here", "malformed_caption"),
        (b"#a/DET#0.0#0.0", "empty_caption"),
        (b"a person.##0.0#0.0", "malformed_caption"),
        (b"a person.#a DET#0.0#0.0", "malformed_caption"),
        (b"a person.#a/DET#zero#1.0", "malformed_caption"),
        (b"a person.#a/DET#2.0#1.0", "invalid_span"),
        (b"a person.#a/DET#-1.0#1.0", "invalid_span"),
        (b"a person.#a/DET#0.0#inf", "invalid_span"),
        (b"a person \xff.#a/DET#0.0#0.0", "non_utf8_caption"),
    ],
)
def test_bad_lines_get_specific_reasons(raw, reason):
    with pytest.raises(CaptionError) as err:
        parse_caption_line(raw)
    assert err.value.reason == reason


def test_split_lines_ignores_final_newline_only():
    assert split_caption_lines(b"a\nb\n") == [b"a", b"b"]
    assert split_caption_lines(b"a\n\nb") == [b"a", b"", b"b"]
    assert split_caption_lines(b"a\r\nb") == [b"a", b"b"]
