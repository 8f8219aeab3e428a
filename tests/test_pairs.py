import pytest

from mmexplore.data.pairs import parse_pairs, read_pairs, read_texts
from mmexplore.errors import InputError


def test_csv_many_to_many(tmp_path):
    f = tmp_path / "caps.csv"
    f.write_text("image,text\nimgs/a.png,a red circle\nimgs/a.png,a circle\nimgs/b.png,a circle\n")
    t = read_pairs(f)
    assert t.images == [str((tmp_path / "imgs/a.png").resolve()), str((tmp_path / "imgs/b.png").resolve())]
    assert t.texts == ["a red circle", "a circle"]
    assert t.pairs.tolist() == [[True, True], [False, True]]


def test_tsv_and_jsonl_and_extra_columns():
    t = parse_pairs(b"image\ttext\tphrase\na.png\ta red circle\tred circle\n", "p.tsv")
    assert t.rows[0]["phrase"] == "red circle"
    j = parse_pairs(b'{"image": "a.png", "text": "a square"}\n\n{"image": "b.png", "text": "x"}\n', "p.jsonl")
    assert len(j.rows) == 2


@pytest.mark.parametrize(
    ("data", "name", "needle"),
    [
        (b"img,caption\na.png,x\n", "p.csv", "not a pairs file: no image/text column(s)"),
        (b"image,text\n", "p.csv", "no rows"),
        (b"image,text\na.png,\n", "p.csv", "row 1 has an empty"),
        (b'{"image": "a.png"\n', "p.jsonl", "line 1 is not valid JSON"),
        (b"\xff\xfe\x00bad", "p.csv", "not UTF-8"),
        (b"image,text\na,b\n", "p.xlsx", "unsupported pairs file type"),
    ],
)
def test_bad_pair_files(data, name, needle):
    with pytest.raises(InputError) as info:
        parse_pairs(data, name)
    assert name in str(info.value) and needle in str(info.value)


def test_errors_never_quote_the_file():
    """A file that is not a pairs file (an environment dump, a credentials file) is never echoed."""
    for data in (b"SECRET_KEY=abc123\0HOME=/root\0", b"machine x login u password hunter2\n", b"a,b\nhunter2,x\n"):
        with pytest.raises(InputError) as info:
            parse_pairs(data, "leak.csv")
        assert "hunter2" not in str(info.value) and "SECRET" not in str(info.value)


def test_read_texts(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("a red circle\n\n a blue square \n")
    assert read_texts(f) == ["a red circle", "a blue square"]
    (tmp_path / "e.txt").write_text("\n\n")
    with pytest.raises(InputError, match="no captions"):
        read_texts(tmp_path / "e.txt")
