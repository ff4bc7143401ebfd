import personae


def test_all_is_complete_and_importable():
    public = {n for n in dir(personae) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(personae.__all__), public - set(personae.__all__)
    for name in personae.__all__:
        assert getattr(personae, name) is not None


def test_every_public_name_is_documented():
    undocumented = [
        n
        for n in personae.__all__
        if callable(getattr(personae, n)) and not getattr(personae, n).__doc__
    ]
    assert undocumented == []
