//! The `dispatch` object's calls and replies (filled in by issue 24's reshaping).
