"""Shaping by channel profile: exact outputs for markdown (chat), plain text, GSM-7 (SMS
segments, GSM-7 / UCS-2) and speakable text (voice), each within the profile's limits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.brain.shaping import (
    DEFAULT_SEGMENT_BUDGET,
    MAX_REPLY_CHARS,
    shape,
    strip_markdown,
)
from services.brain.sms_text import (
    SegmentInfo,
    count_segments,
    fit_to_segments,
    is_gsm7,
    normalize_gsm7,
)
from services.channels.sms.profile import sms_profile
from services.channels.voipbin.profile import VoiceProfileSettings, voice_profile
from services.channels.webchat.profile import chat_profile
from shared.contracts import ChannelProfile, Modality, TextFormat

pytestmark = pytest.mark.unit

CHAT = chat_profile()
SMS = sms_profile()
VOICE = voice_profile(VoiceProfileSettings(max_spoken_chars=300))


def changed(profile: ChannelProfile, **fields: object) -> ChannelProfile:
    """`profile` with `fields` changed, validated like a channel's own profile."""
    return ChannelProfile.model_validate({**profile.model_dump(), **fields})


CYRILLIC = "ж"  # one UTF-16 unit, not GSM-7: forces UCS-2
EMOJI = "😀"  # outside the BMP: a surrogate pair, two UTF-16 units


# --- GSM-7 alphabet and normalization -------------------------------------------------------


def test_the_whole_gsm7_basic_and_extension_tables_are_gsm7() -> None:
    basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./09:;<=>?¡AZÄÖÑÜ§¿azäöñüà"
    assert is_gsm7(basic)
    assert is_gsm7("^{}\\[~]|€\f")


@pytest.mark.parametrize("char", ["`", "á", "ç", "\u00a0", "\x1b", "…", "\u2019", CYRILLIC, EMOJI])
def test_characters_outside_gsm7(char: str) -> None:
    assert not is_gsm7(f"abc{char}")


def test_typography_is_normalized_to_gsm7_twins() -> None:
    quotes = "\u2018a\u2019 \u201cb\u201d"
    dashes = "x\u2013y\u2014z \u22121"  # en dash, em dash, minus sign
    spaces = "item\u00a0nbsp\u2009thin\u200bzw"  # no-break, thin, zero-width
    text = f"{quotes} {dashes} wait… • {spaces}"
    assert normalize_gsm7(text) == "'a' \"b\" x-y-z -1 wait... - item nbsp thinzw"
    assert is_gsm7(normalize_gsm7(text))


def test_smart_quotes_normalized_keep_a_message_gsm7() -> None:
    assert count_segments("It\u2019s \u201cfine\u201d").encoding == "UCS-2"
    assert count_segments(normalize_gsm7("It\u2019s \u201cfine\u201d")) == SegmentInfo(
        "GSM-7", 11, 1
    )


def test_characters_without_a_gsm7_twin_are_kept() -> None:
    text = f"Thanks {EMOJI} 你好 café á"
    assert normalize_gsm7(text) == text
    assert count_segments(normalize_gsm7(text)).encoding == "UCS-2"


# --- segment counting -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SegmentInfo("GSM-7", 0, 0)),
        ("a" * 160, SegmentInfo("GSM-7", 160, 1)),
        ("a" * 161, SegmentInfo("GSM-7", 161, 2)),
        ("a" * 306, SegmentInfo("GSM-7", 306, 2)),
        ("a" * 307, SegmentInfo("GSM-7", 307, 3)),
        ("a" * 459, SegmentInfo("GSM-7", 459, 3)),
        ("a" * 460, SegmentInfo("GSM-7", 460, 4)),
        (CYRILLIC * 70, SegmentInfo("UCS-2", 70, 1)),
        (CYRILLIC * 71, SegmentInfo("UCS-2", 71, 2)),
        (CYRILLIC * 134, SegmentInfo("UCS-2", 134, 2)),
        (CYRILLIC * 135, SegmentInfo("UCS-2", 135, 3)),
    ],
    ids=["empty", "160", "161", "306", "307", "459", "460", "u70", "u71", "u134", "u135"],
)
def test_segment_boundaries(text: str, expected: SegmentInfo) -> None:
    assert count_segments(text) == expected


def test_extension_characters_cost_two_septets() -> None:
    assert count_segments("€" * 80) == SegmentInfo("GSM-7", 160, 1)
    assert count_segments("€" * 81) == SegmentInfo("GSM-7", 162, 2)
    assert count_segments("a" * 159 + "[") == SegmentInfo("GSM-7", 161, 2)


def test_an_escape_pair_is_never_split_across_segments() -> None:
    # 306 septets would be 2 segments, but the € cannot straddle septet 153: it opens segment 2,
    # which then overflows by one septet.
    assert count_segments("a" * 152 + "€" + "a" * 152) == SegmentInfo("GSM-7", 306, 3)
    assert count_segments("a" * 151 + "€" + "a" * 153) == SegmentInfo("GSM-7", 306, 2)


def test_one_non_gsm7_character_switches_the_whole_text_to_ucs2() -> None:
    assert count_segments("a" * 100) == SegmentInfo("GSM-7", 100, 1)
    assert count_segments("a" * 100 + CYRILLIC) == SegmentInfo("UCS-2", 101, 2)
    assert count_segments("hi " + EMOJI) == SegmentInfo("UCS-2", 5, 1)


def test_emoji_count_two_utf16_units() -> None:
    assert count_segments(EMOJI * 35) == SegmentInfo("UCS-2", 70, 1)
    assert count_segments(EMOJI * 36) == SegmentInfo("UCS-2", 72, 2)


def test_a_surrogate_pair_is_never_split_across_segments() -> None:
    assert count_segments("a" * 66 + EMOJI + "a" * 66) == SegmentInfo("UCS-2", 134, 3)
    assert count_segments("a" * 65 + EMOJI + "a" * 67) == SegmentInfo("UCS-2", 134, 2)


# --- fitting to a segment budget ------------------------------------------------------------


def test_text_that_fits_is_unchanged() -> None:
    text = "a b " * 40  # 160 characters, trailing space and all
    assert fit_to_segments(text, 1) == text


def test_cut_prefers_the_last_sentence_that_fits() -> None:
    text = "Short one. " * 20
    assert fit_to_segments(text, 1) == ("Short one. " * 14).rstrip()


def test_cut_falls_back_to_a_word_boundary_with_gsm7_dots() -> None:
    shaped = fit_to_segments("word " * 100, 1)
    assert shaped == ("word " * 31).rstrip() + "..."
    assert count_segments(shaped) == SegmentInfo("GSM-7", 157, 1)


def test_a_short_first_sentence_does_not_throw_away_a_long_answer() -> None:
    assert fit_to_segments("Yes. " + "word " * 100, 1) == "Yes. " + ("word " * 30).rstrip() + "..."


def test_ucs2_cut_uses_the_single_ellipsis_character() -> None:
    shaped = fit_to_segments(EMOJI + " " + "word " * 100, 1)
    assert shaped == EMOJI + " " + ("word " * 13).rstrip() + "…"
    assert count_segments(shaped) == SegmentInfo("UCS-2", 68, 1)


def test_an_emoji_cut_away_no_longer_forces_ucs2() -> None:
    shaped = fit_to_segments("word " * 40 + EMOJI, 1)
    assert shaped == ("word " * 31).rstrip() + "..."
    assert count_segments(shaped).encoding == "GSM-7"


def test_budget_of_three_segments_is_used_in_full() -> None:
    shaped = fit_to_segments("word " * 200, 3)
    assert shaped == ("word " * 91).rstrip() + "..."
    assert count_segments(shaped) == SegmentInfo("GSM-7", 457, 3)


def test_a_line_end_counts_as_a_sentence_end() -> None:
    text = "Mon to Fri nine to five\n" * 10
    assert fit_to_segments(text, 1) == ("Mon to Fri nine to five\n" * 6).rstrip()


def test_a_word_cut_drops_a_dangling_comma_before_the_dots() -> None:
    assert fit_to_segments("alpha, " * 30, 1) == ", ".join(["alpha"] * 22) + "..."


def test_only_a_word_longer_than_the_budget_is_split() -> None:
    assert fit_to_segments("x" * 500, 1) == "x" * 157 + "..."


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least one segment"):
        fit_to_segments("hi", 0)


@pytest.mark.parametrize("text_format", list(TextFormat))
def test_an_empty_answer_stays_empty(text_format: TextFormat) -> None:
    assert shape(ChannelProfile(text_format=text_format), "  \n ") == ""


# --- chat -----------------------------------------------------------------------------------


def test_chat_keeps_markdown_and_strips_surrounding_whitespace() -> None:
    text = "  **Hi** see [docs](https://a.example/x_y)\n- item  \n\n"
    assert shape(CHAT, text) == "**Hi** see [docs](https://a.example/x_y)\n- item"


def test_chat_is_capped_at_a_word_boundary() -> None:
    short = changed(CHAT, max_chars=20)
    assert shape(short, "one two three four five six") == "one two three four…"
    assert shape(short, "Hello there. General Kenobi") == "Hello there."
    assert CHAT.max_chars == ChannelProfile().max_chars == MAX_REPLY_CHARS


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_chars": 0}, "max_chars"),
        ({"text_format": TextFormat.GSM7, "max_segments": 0}, "max_segments"),
        ({"text_format": TextFormat.PLAIN, "max_segments": 2}, "gsm7 text format only"),
    ],
    ids=["max_chars", "max_segments", "segments_without_gsm7"],
)
def test_profiles_refuse_limits_shaping_cannot_honour(
    fields: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError, match=field):
        ChannelProfile.model_validate(fields)


# --- markdown stripping ---------------------------------------------------------------------


def test_strip_markdown_leaves_urls_and_snake_case_alone() -> None:
    text = "[docs](https://x.example/a_b_c) and _em_ and snake_case_name"
    assert strip_markdown(text) == "docs (https://x.example/a_b_c) and em and snake_case_name"
    assert strip_markdown(text, link_targets=False) == "docs and em and snake_case_name"
    bare = "see https://x.example/_build_/*index* now"
    assert strip_markdown(bare) == bare


def test_strip_markdown_removes_fences_quotes_and_bullets() -> None:
    text = "```python\nprint(1)\n```\n> quoted **bold**\n• one\n1. two\n~~old~~ *new*"
    assert strip_markdown(text) == "print(1)\nquoted bold\none\ntwo\nold new"


# --- SMS ------------------------------------------------------------------------------------


def test_sms_is_plain_gsm7_text_with_link_targets() -> None:
    text = (
        "**Hours**: see [our page](https://example.org/opening_hours)\n\n"
        "- Mon\u2013Fri   9\u20135\n"
        "- Sat: \u201cclosed\u201d…  "
    )
    shaped = shape(SMS, text)
    assert shaped == (
        'Hours: see our page (https://example.org/opening_hours)\nMon-Fri 9-5\nSat: "closed"...'
    )
    assert count_segments(shaped).encoding == "GSM-7"


def test_sms_keeps_emoji_and_so_goes_ucs2() -> None:
    assert shape(SMS, f"Thanks {EMOJI}") == f"Thanks {EMOJI}"


def test_sms_fits_the_segment_budget() -> None:
    one = sms_profile(segment_budget=1)
    assert shape(one, "word " * 200) == ("word " * 31).rstrip() + "..."
    assert count_segments(shape(SMS, "word " * 200)).segments == 3
    assert count_segments(shape(SMS, "Short one. " * 60)).segments == 3
    assert shape(SMS, "Short one. " * 60).endswith("one.")


def test_a_gsm7_profile_without_a_segment_budget_gets_the_default() -> None:
    unbudgeted = ChannelProfile(text_format=TextFormat.GSM7)
    assert shape(unbudgeted, "word " * 200) == shape(
        sms_profile(DEFAULT_SEGMENT_BUDGET), "word " * 200
    )
    assert count_segments(shape(unbudgeted, "word " * 200)).segments == DEFAULT_SEGMENT_BUDGET


# --- plain text -----------------------------------------------------------------------------


def test_plain_text_loses_markup_keeps_link_targets_and_typography() -> None:
    plain = ChannelProfile(text_format=TextFormat.PLAIN)
    text = "**Hours**: see [our page](https://example.org/x_y)\n\n- Mon\u2013Fri \u201cnine\u201d  "
    # Unlike GSM-7, nothing is traded for a cheaper alphabet: dashes and quotes stay.
    assert shape(plain, text) == (
        "Hours: see our page (https://example.org/x_y)\n\nMon\u2013Fri \u201cnine\u201d"
    )


def test_plain_text_is_capped_at_its_max_chars() -> None:
    plain = ChannelProfile(text_format=TextFormat.PLAIN, max_chars=20)
    assert shape(plain, "one **two** three four five six") == "one two three four…"


# --- voice ----------------------------------------------------------------------------------


def test_voice_is_speakable_flowing_text() -> None:
    text = (
        "## Opening hours 🕘\n"
        "- Mon\u2013Fri: 9 to 5\n"
        "- Sat & Sun: closed ✅\n\n"
        "Book at [our site](https://example.org/book) or https://www.example.com/a?b=1. "
        "Save 20% today! 🎉"
    )
    assert shape(VOICE, text) == (
        "Opening hours. Mon\u2013Fri: 9 to 5. Sat and Sun: closed. "
        "Book at our site or example.com. Save 20 percent today!"
    )


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("https://www.example.com/a?b", "example.com."),
        ("Go to http://Shop.Example.org:8080/x_y.", "Go to shop.example.org."),
        ("See www.example.net/path, then call.", "See example.net, then call."),
    ],
)
def test_voice_reads_a_url_as_its_host(text: str, spoken: str) -> None:
    assert shape(VOICE, text) == spoken


def test_voice_drops_emoji_and_pictographs() -> None:
    text = "Great 👍🏽 job 👨‍👩‍👧 ❤️ ⭐ 🇫🇷!"
    assert shape(VOICE, text) == "Great job!"


def test_voice_joins_a_wrapped_line_but_ends_a_list_item() -> None:
    text = "We open at nine and\nclose at five\nWeekends\n- closed"
    assert shape(VOICE, text) == "We open at nine and close at five. Weekends. closed."


def test_voice_speaks_ampersand_and_percent() -> None:
    assert shape(VOICE, "Q&A: 5 % off, R & D") == "Q and A: 5 percent off, R and D."


def test_voice_cut_prefers_a_sentence_boundary() -> None:
    text = "First sentence is here. Second sentence is longer than that."
    assert shape(changed(VOICE, max_chars=40), text) == "First sentence is here."
    short = changed(VOICE, max_chars=15)
    assert shape(short, "Really? Yes! And then some more") == "Really? Yes!"


def test_voice_cut_never_splits_a_word() -> None:
    short = changed(VOICE, max_chars=20)
    assert shape(short, "alpha beta gamma delta epsilon") == "alpha beta gamma..."


def test_voice_default_length_is_capped() -> None:
    shaped = shape(VOICE, "This is a sentence. " * 40)
    assert len(shaped) <= 300
    assert shaped == ("This is a sentence. " * 15).rstrip()


def test_the_spoken_length_is_the_voice_channel_setting() -> None:
    longer = voice_profile(VoiceProfileSettings(max_spoken_chars=600))
    assert shape(longer, "This is a sentence. " * 40) == ("This is a sentence. " * 30).rstrip()


def test_shaping_follows_the_text_format_not_the_modality() -> None:
    """A spoken channel that wants markdown gets markdown: only the text format decides."""
    odd = ChannelProfile(modality=Modality.SPEECH, text_format=TextFormat.MARKDOWN, max_chars=40)
    assert shape(odd, "**Hi** there") == "**Hi** there"
