"""seqmem.tasks.translation (chapter 4): numbers from English to Chinese, dates to ISO 8601.

The readings are checked against cases written out by hand from the rules, and against parsers
written here that read every one of the 10,000 numbers back."""
import datetime

import pytest
import torch

from helpers import gen
from seqmem import tasks, text

# ------------------------------------------------------------------ numbers, case by case

CHINESE = {
    0: "零", 1: "一", 7: "七", 10: "十", 11: "十一", 12: "十二", 19: "十九", 20: "二十", 21: "二十一",
    99: "九十九", 100: "一百", 101: "一百零一", 105: "一百零五", 110: "一百一十", 111: "一百一十一",
    115: "一百一十五", 120: "一百二十", 200: "二百", 999: "九百九十九", 1000: "一千", 1001: "一千零一",
    1010: "一千零一十", 1011: "一千零一十一", 1100: "一千一百", 1101: "一千一百零一", 1110: "一千一百一十",
    1234: "一千二百三十四", 2019: "二千零一十九", 2300: "二千三百", 3012: "三千零一十二", 4005: "四千零五",
    5050: "五千零五十", 6600: "六千六百", 7007: "七千零七", 8080: "八千零八十", 9999: "九千九百九十九",
}

ENGLISH = {
    0: "zero", 7: "seven", 13: "thirteen", 20: "twenty", 21: "twenty one", 40: "forty", 99: "ninety nine",
    100: "one hundred", 105: "one hundred and five", 110: "one hundred and ten", 342: "three hundred and forty two",
    1000: "one thousand", 1001: "one thousand and one", 1010: "one thousand and ten",
    1100: "one thousand one hundred", 1234: "one thousand two hundred and thirty four",
    3012: "three thousand and twelve", 5600: "five thousand six hundred", 8090: "eight thousand and ninety",
    9999: "nine thousand nine hundred and ninety nine",
}


@pytest.mark.parametrize("n", sorted(CHINESE))
def test_chinese_numeral_by_hand(n):
    assert tasks.chinese_numeral(n) == CHINESE[n]


@pytest.mark.parametrize("n", sorted(ENGLISH))
def test_number_words_by_hand(n):
    assert tasks.number_words(n) == ENGLISH[n].split()


def read_chinese(s):
    """The number a Chinese reading stands for: digits times their units, 零 skipped, a bare 十 is 10."""
    digits = {c: d for d, c in enumerate("零一二三四五六七八九")}
    units = {"十": 10, "百": 100, "千": 1000}
    total, digit = 0, None
    for c in s:
        if c in units:
            total += (1 if digit is None else digit) * units[c]
            digit = None
        elif c != "零":
            digit = digits[c]
    return total + (digit or 0)


def read_english(words):
    ones = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
            "sixteen seventeen eighteen nineteen").split()
    tens = "twenty thirty forty fifty sixty seventy eighty ninety".split()
    values = {**{w: n for n, w in enumerate(ones)}, **{w: 10 * k for k, w in enumerate(tens, start=2)}}
    total, part = 0, 0
    for w in words:
        if w == "thousand":
            total, part = total + 1000 * part, 0
        elif w == "hundred":
            part *= 100
        elif w != "and":
            part += values[w]
    return total + part


def test_every_number_reads_back_and_follows_the_zero_rules():
    src, tgt = tasks.number_vocabs()
    for n in range(10000):
        chinese, words = tasks.chinese_numeral(n), tasks.number_words(n)
        assert read_chinese(chinese) == n and read_english(words) == n
        assert set(chinese) <= set(tgt.tokens) and set(words) <= set(src.tokens)
        if n:
            assert "零零" not in chinese and not chinese.endswith("零") and not chinese.startswith("零")
        # "and" exactly when hundreds or thousands come before non-zero last two digits
        assert words.count("and") == (n >= 100 and n % 100 != 0)
    assert len(src) == 3 + 31 and len(tgt) == 3 + 13


@pytest.mark.parametrize("bad", [-1, 10000, 3.0, True, "7"])
def test_numbers_out_of_range_raise(bad):
    with pytest.raises(ValueError, match="0, 9999"):
        tasks.chinese_numeral(bad)
    with pytest.raises(ValueError, match="0, 9999"):
        tasks.number_words(bad)


# ------------------------------------------------------------------ the translation task


def test_number_split_is_a_fixed_partition_of_0_to_9999():
    torch.manual_seed(123)  # the global generator plays no part
    train, test = tasks.number_split("train"), tasks.number_split("test")
    assert len(test) == 2000 and len(train) == 8000
    assert not set(train) & set(test) and sorted(train + test) == list(range(10000))
    torch.manual_seed(7)
    assert tasks.number_split("test") == test
    with pytest.raises(ValueError, match="split"):
        tasks.number_split("dev")


def decoded_numbers(pairs):
    src, tgt = tasks.number_vocabs()
    out = []
    for b in range(len(pairs.source_text)):
        words = src.decode(pairs.source.ids[b, : pairs.source.lengths[b]])
        chinese = "".join(tgt.decode(text.strip_special(pairs.target.ids[b])))
        out.append((read_english(words), words, chinese))
    return out


@pytest.mark.parametrize("split", ["train", "test"])
def test_number_translation_targets_decode_to_the_reading_of_the_source(split):
    pairs = tasks.number_translation(500, split, generator=gen(1))
    assert pairs.source.ids.dtype == pairs.target.ids.dtype == torch.long
    assert pairs.source.ids.shape[0] == pairs.target.ids.shape[0] == 500 and pairs.target.ids.shape[1] <= 8
    rows = torch.arange(500)
    assert torch.all(pairs.target.ids[rows, pairs.target.lengths - 1] == text.EOS_ID)
    allowed = set(tasks.number_split(split))
    for b, (n, words, chinese) in enumerate(decoded_numbers(pairs)):
        assert n in allowed and chinese == tasks.chinese_numeral(n)
        assert pairs.source_text[b] == " ".join(words) and pairs.target_text[b] == chinese


def test_number_translation_is_seeded_and_checks_arguments():
    a, b = tasks.number_translation(64, generator=gen(2)), tasks.number_translation(64, generator=gen(2))
    assert a.source_text == b.source_text and torch.equal(a.target.ids, b.target.ids)
    assert a.source_text != tasks.number_translation(64, generator=gen(3)).source_text
    with pytest.raises(ValueError, match="split"):
        tasks.number_translation(4, "valid")
    with pytest.raises(ValueError, match="positive int"):
        tasks.number_translation(0)


# ------------------------------------------------------------------ dates


def test_date_styles_are_what_date_text_writes():
    day = datetime.date(2021, 3, 12)  # a Friday
    assert [tasks.date_text(day, s) for s in range(5)] == list(tasks.DATE_STYLES)
    assert tasks.date_text(datetime.date(2000, 1, 1), 4) == "Saturday 1 January 2000"
    assert tasks.date_text(datetime.date(1950, 6, 5), 3) == "05/06/1950"
    assert tasks.date_text(datetime.date(2049, 9, 30), 1) == "September 30, 2049"
    assert tasks.date_text(datetime.date(1999, 12, 7), 2) == "7 Dec 1999"
    with pytest.raises(ValueError, match="style"):
        tasks.date_text(day, 5)
    with pytest.raises(ValueError, match="datetime.date"):
        tasks.date_text("2021-03-12")


def test_date_split_is_a_fixed_partition_of_the_century():
    train, test = tasks.date_split("train"), tasks.date_split("test")
    every = [datetime.date(1950, 1, 1) + datetime.timedelta(days=k) for k in range(36525)]
    assert every[-1] == datetime.date(2049, 12, 31)
    assert len(test) == 7305 and not set(train) & set(test) and sorted(train + test) == every
    assert tasks.date_split("test") == test
    with pytest.raises(ValueError, match="split"):
        tasks.date_split("all")


# strptime's month and day names are the C locale's, English, which Python uses unless told otherwise
FORMATS = ("%d %B %Y", "%B %d, %Y", "%d %b %Y", "%d/%m/%Y", "%A %d %B %Y")


def parse_date(s):
    for fmt in FORMATS:
        try:
            return datetime.datetime.strptime(s, fmt).date(), fmt
        except ValueError:
            pass
    raise AssertionError(f"no style reads {s!r}")


@pytest.mark.parametrize("split", ["train", "test"])
def test_date_normalisation_targets_are_the_iso_form_of_the_source(split):
    pairs = tasks.date_normalisation(400, split, generator=gen(4))
    src, tgt = tasks.date_vocabs()
    assert pairs.target.ids.shape == (400, 11) and torch.all(pairs.target.ids[:, -1] == text.EOS_ID)
    assert pairs.source.ids.shape[1] == int(pairs.source.lengths.max()) <= 27
    allowed, styles = set(tasks.date_split(split)), set()
    for b in range(400):
        source = "".join(src.decode(pairs.source.ids[b, : pairs.source.lengths[b]]))
        target = "".join(tgt.decode(text.strip_special(pairs.target.ids[b])))
        day, fmt = parse_date(source)
        styles.add(fmt)
        assert day in allowed and target == day.isoformat() == pairs.target_text[b]
        assert source == pairs.source_text[b]
    assert styles == set(FORMATS)  # every style is drawn


def test_date_normalisation_is_seeded():
    a, b = tasks.date_normalisation(32, generator=gen(5)), tasks.date_normalisation(32, generator=gen(5))
    assert a.source_text == b.source_text and torch.equal(a.source.ids, b.source.ids)
    assert a.source_text != tasks.date_normalisation(32, generator=gen(6)).source_text
    with pytest.raises(ValueError, match="positive int"):
        tasks.date_normalisation(-2)


@pytest.mark.parametrize("make", [tasks.number_translation, tasks.date_normalisation])
def test_translation_tasks_follow_the_device(make, dev):
    ours, ref = make(8, generator=gen(7), device=dev), make(8, generator=gen(7))
    assert ours.source.ids.device.type == ours.target.mask.device.type == dev.type
    assert torch.equal(ours.target.ids.cpu(), ref.target.ids) and ours.source_text == ref.source_text
