"""The public API is exactly what ``fallover.__all__`` says."""

import fallover


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted and names every public attribute of the package."""
    assert fallover.__all__ == sorted(fallover.__all__)
    public = {
        name
        for name in dir(fallover)
        if not name.startswith("_") and not isinstance(getattr(fallover, name), type(fallover))
    }
    assert public == set(fallover.__all__)


def test_exported_names_resolve() -> None:
    """Every name in __all__ is importable from the package."""
    for name in fallover.__all__:
        assert getattr(fallover, name) is not None, name


def test_public_classes_and_functions_report_the_package() -> None:
    """Public names report ``fallover`` (or ``fallover.testing``) as their module, never a private one."""
    import fallover.testing

    for package in (fallover, fallover.testing):
        for name in package.__all__:
            obj = getattr(package, name)
            module = getattr(obj, "__module__", None)
            if module is not None and callable(obj):
                assert module in ("fallover", "fallover.testing"), (package.__name__, name, module)
