//! Positions inside parsed text, so that parse errors can point at the offending token.

use std::fmt;

/// Where a token starts: byte offset (0-based) plus line and column (1-based, counted in chars).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextPos {
    pub offset: usize,
    pub line: usize,
    pub column: usize,
}

impl TextPos {
    /// Position of byte `offset` in `text` (clamped to the text's end).
    pub fn locate(text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self { offset, line, column }
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

impl fmt::Display for TextPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {} (byte {})", self.line, self.column, self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_and_columns_from_one() {
        let text = "ab\ncdé\nf";
        assert_eq!(TextPos::locate(text, 0), TextPos { offset: 0, line: 1, column: 1 });
        assert_eq!(TextPos::locate(text, 4), TextPos { offset: 4, line: 2, column: 2 });
        // 'é' is two bytes: the 'f' on line 3 starts at byte 8.
        assert_eq!(TextPos::locate(text, 8), TextPos { offset: 8, line: 3, column: 1 });
        assert_eq!(TextPos::locate(text, 99).offset, text.len());
    }
}
