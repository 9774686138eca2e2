//! Parser for the DARTS Python notation of a genotype, as printed by the reference
//! (`print(genotype)` in train_search.py, the constants in genotypes.py).
//!
//! Accepts `Genotype(normal=[('op', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...],
//! reduce_concat=range(2, 6))`: keyword or positional arguments in Python's rules, single or
//! double quotes, any whitespace and trailing commas. Every error points at the offending token.

use super::genotype::{CellKind, Gene, Genotype, InvalidGenotype};
use super::ops::DartsOp;
use super::text_pos::TextPos;

/// Text that is not a valid genotype in DARTS notation.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NotationError {
    #[error("unexpected `{token}` at {pos}, expected {expected}")]
    Unexpected { token: String, expected: &'static str, pos: TextPos },
    #[error("text ends at {pos}, expected {expected}")]
    UnexpectedEnd { expected: &'static str, pos: TextPos },
    #[error("unknown op `{token}` at {pos}")]
    UnknownOp { token: String, pos: TextPos },
    #[error("unterminated string `{token}` at {pos}")]
    UnterminatedString { token: String, pos: TextPos },
    #[error("number `{token}` at {pos} is too large")]
    NumberTooLarge { token: String, pos: TextPos },
    #[error("unknown field `{token}` at {pos}, expected normal, normal_concat, reduce or reduce_concat")]
    UnknownField { token: String, pos: TextPos },
    #[error("field `{token}` given a second time at {pos}")]
    DuplicateField { token: String, pos: TextPos },
    #[error("too many arguments: `{token}` at {pos}")]
    TooManyArguments { token: String, pos: TextPos },
    #[error("positional argument `{token}` at {pos} follows a keyword argument")]
    PositionalAfterKeyword { token: String, pos: TextPos },
    #[error("missing field `{field}` in the Genotype ending at {pos}")]
    MissingField { field: &'static str, pos: TextPos },
    #[error("{reason}: `{token}` at {pos}")]
    Invalid { reason: InvalidGenotype, token: String, pos: TextPos },
}

/// Parses one genotype; the whole text must be consumed (surrounding whitespace allowed).
pub fn parse(text: &str) -> Result<Genotype, NotationError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { text, tokens, next: 0 };
    let fields = parser.genotype()?;
    parser.end()?;
    fields.into_genotype(text)
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Ident,
    Int(usize),
    Str,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

fn tokenize(text: &str) -> Result<Vec<Token>, NotationError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = match c {
            _ if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'(' | b')' | b'[' | b']' | b',' | b'=' => {
                i += 1;
                Kind::Punct(c as char)
            }
            b'\'' | b'"' => {
                let close = text[i + 1..].find([c as char, '\n']).map(|n| i + 1 + n);
                match close {
                    Some(close) if bytes[close] == c => {
                        i = close + 1;
                        Kind::Str
                    }
                    _ => {
                        let end = close.unwrap_or(text.len());
                        return Err(NotationError::UnterminatedString {
                            token: text[start..end].to_string(),
                            pos: TextPos::locate(text, start),
                        });
                    }
                }
            }
            b'0'..=b'9' => {
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let digits = &text[start..i];
                let value = digits.parse().map_err(|_| NotationError::NumberTooLarge {
                    token: digits.to_string(),
                    pos: TextPos::locate(text, start),
                })?;
                Kind::Int(value)
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                Kind::Ident
            }
            _ => {
                let ch = text[start..].chars().next().unwrap_or('?');
                return Err(NotationError::Unexpected {
                    token: ch.to_string(),
                    expected: "Python genotype notation",
                    pos: TextPos::locate(text, start),
                });
            }
        };
        tokens.push(Token { kind, start, end: i });
    }
    Ok(tokens)
}

const FIELDS: [&str; 4] = ["normal", "normal_concat", "reduce", "reduce_concat"];

/// A parsed gene list or concat list, with the spans needed to point at items afterwards.
#[derive(Default)]
struct GeneList {
    genes: Vec<Gene>,
    /// Span of each gene's input index token.
    input_spans: Vec<(usize, usize)>,
    /// Span of the closing bracket.
    close: (usize, usize),
}

#[derive(Default)]
struct ConcatList {
    states: Vec<usize>,
    /// Span of each item's token (for `range(...)`, the whole range call).
    spans: Vec<(usize, usize)>,
    whole: (usize, usize),
}

#[derive(Default)]
struct Fields {
    normal: Option<GeneList>,
    normal_concat: Option<ConcatList>,
    reduce: Option<GeneList>,
    reduce_concat: Option<ConcatList>,
    close: (usize, usize),
}

impl Fields {
    fn into_genotype(self, text: &str) -> Result<Genotype, NotationError> {
        let pos = TextPos::locate(text, self.close.0);
        let missing = |field| NotationError::MissingField { field, pos };
        let normal = self.normal.ok_or_else(|| missing("normal"))?;
        let normal_concat = self.normal_concat.ok_or_else(|| missing("normal_concat"))?;
        let reduce = self.reduce.ok_or_else(|| missing("reduce"))?;
        let reduce_concat = self.reduce_concat.ok_or_else(|| missing("reduce_concat"))?;
        let genotype = Genotype {
            normal: normal.genes.clone(),
            normal_concat: normal_concat.states.clone(),
            reduce: reduce.genes.clone(),
            reduce_concat: reduce_concat.states.clone(),
        };
        let Err(source) = genotype.validate() else {
            return Ok(genotype);
        };
        let spans = |cell| match cell {
            CellKind::Normal => (&normal, &normal_concat),
            CellKind::Reduce => (&reduce, &reduce_concat),
        };
        let span = match source {
            InvalidGenotype::BadGeneCount { cell, .. } => spans(cell).0.close,
            InvalidGenotype::InputOutOfRange { cell, gene, .. } => spans(cell).0.input_spans[gene],
            InvalidGenotype::EmptyConcat { cell } => spans(cell).1.whole,
            InvalidGenotype::ConcatOutOfRange { cell, item, .. }
            | InvalidGenotype::DuplicateConcat { cell, item, .. } => spans(cell).1.spans[item],
        };
        Err(NotationError::Invalid {
            reason: source,
            token: text[span.0..span.1].to_string(),
            pos: TextPos::locate(text, span.0),
        })
    }
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    next: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn pos(&self, offset: usize) -> TextPos {
        TextPos::locate(self.text, offset)
    }

    fn slice(&self, token: &Token) -> &str {
        &self.text[token.start..token.end]
    }

    fn unexpected(&self, expected: &'static str) -> NotationError {
        match self.peek() {
            Some(token) => NotationError::Unexpected {
                token: self.slice(token).to_string(),
                expected,
                pos: self.pos(token.start),
            },
            None => NotationError::UnexpectedEnd { expected, pos: self.pos(self.text.len()) },
        }
    }

    fn take(&mut self, expected: &'static str) -> Result<Token, NotationError> {
        let token = self.peek().cloned().ok_or_else(|| self.unexpected(expected))?;
        self.next += 1;
        Ok(token)
    }

    fn is_punct(&self, c: char) -> bool {
        matches!(self.peek(), Some(Token { kind: Kind::Punct(p), .. }) if *p == c)
    }

    fn punct(&mut self, c: char, expected: &'static str) -> Result<Token, NotationError> {
        if self.is_punct(c) {
            self.take(expected)
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn ident(&mut self, name: &str, expected: &'static str) -> Result<Token, NotationError> {
        match self.peek() {
            Some(token) if token.kind == Kind::Ident && self.slice(token) == name => self.take(expected),
            _ => Err(self.unexpected(expected)),
        }
    }

    fn int(&mut self, expected: &'static str) -> Result<(usize, Token), NotationError> {
        match self.peek() {
            Some(Token { kind: Kind::Int(value), .. }) => {
                let value = *value;
                Ok((value, self.take(expected)?))
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    fn end(&self) -> Result<(), NotationError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.unexpected("end of text after the Genotype")),
        }
    }

    /// Consumes a `,` before the next item of a sequence closed by `close`; returns whether the
    /// sequence goes on (Python allows a trailing comma).
    fn separator(&mut self, close: char, expected: &'static str) -> Result<bool, NotationError> {
        if self.is_punct(close) {
            return Ok(false);
        }
        self.punct(',', expected)?;
        Ok(!self.is_punct(close))
    }

    fn genotype(&mut self) -> Result<Fields, NotationError> {
        self.ident("Genotype", "`Genotype`")?;
        self.punct('(', "`(` after Genotype")?;
        let mut fields = Fields::default();
        let mut positional = 0;
        let mut keyword_seen = false;
        let mut more = !self.is_punct(')');
        while more {
            let first = self.peek().cloned().ok_or_else(|| self.unexpected("a Genotype field"))?;
            let is_keyword = first.kind == Kind::Ident
                && matches!(self.tokens.get(self.next + 1), Some(Token { kind: Kind::Punct('='), .. }));
            let field = if is_keyword {
                keyword_seen = true;
                self.next += 2;
                let name = self.slice(&first);
                let index = FIELDS.iter().position(|f| *f == name).ok_or_else(|| {
                    NotationError::UnknownField { token: name.to_string(), pos: self.pos(first.start) }
                })?;
                index
            } else {
                let token = self.slice(&first).to_string();
                if keyword_seen {
                    return Err(NotationError::PositionalAfterKeyword { token, pos: self.pos(first.start) });
                }
                if positional == FIELDS.len() {
                    return Err(NotationError::TooManyArguments { token, pos: self.pos(first.start) });
                }
                positional += 1;
                positional - 1
            };
            let duplicate = || NotationError::DuplicateField {
                token: FIELDS[field].to_string(),
                pos: TextPos::locate(self.text, first.start),
            };
            match field {
                0 if fields.normal.is_some() => return Err(duplicate()),
                1 if fields.normal_concat.is_some() => return Err(duplicate()),
                2 if fields.reduce.is_some() => return Err(duplicate()),
                3 if fields.reduce_concat.is_some() => return Err(duplicate()),
                _ => {}
            }
            match field {
                0 => fields.normal = Some(self.gene_list()?),
                1 => fields.normal_concat = Some(self.concat()?),
                2 => fields.reduce = Some(self.gene_list()?),
                _ => fields.reduce_concat = Some(self.concat()?),
            }
            more = self.separator(')', "`,` or `)` after a Genotype field")?;
        }
        let close = self.punct(')', "`)` closing the Genotype")?;
        fields.close = (close.start, close.end);
        Ok(fields)
    }

    fn gene_list(&mut self) -> Result<GeneList, NotationError> {
        self.punct('[', "`[` opening a gene list")?;
        let mut list = GeneList::default();
        let mut more = !self.is_punct(']');
        while more {
            let (gene, input) = self.gene()?;
            list.genes.push(gene);
            list.input_spans.push((input.start, input.end));
            more = self.separator(']', "`,` or `]` after a gene")?;
        }
        let close = self.punct(']', "`]` closing the gene list")?;
        list.close = (close.start, close.end);
        Ok(list)
    }

    fn gene(&mut self) -> Result<(Gene, Token), NotationError> {
        self.punct('(', "`(` opening an (op, input) gene")?;
        let name = match self.peek() {
            Some(token) if token.kind == Kind::Str => self.take("an op name")?,
            _ => return Err(self.unexpected("a quoted op name")),
        };
        let unquoted = &self.text[name.start + 1..name.end - 1];
        let op = DartsOp::from_name(unquoted).ok_or_else(|| NotationError::UnknownOp {
            token: unquoted.to_string(),
            pos: self.pos(name.start),
        })?;
        self.punct(',', "`,` after the op name")?;
        let (input, token) = self.int("the input state index")?;
        if self.is_punct(',') {
            self.next += 1;
        }
        self.punct(')', "`)` closing the gene")?;
        Ok(((op, input), token))
    }

    fn concat(&mut self) -> Result<ConcatList, NotationError> {
        let mut list = ConcatList::default();
        let start = self.peek().map_or(self.text.len(), |t| t.start);
        if self.is_punct('[') {
            self.next += 1;
            let mut more = !self.is_punct(']');
            while more {
                let (state, token) = self.int("a state index")?;
                list.states.push(state);
                list.spans.push((token.start, token.end));
                more = self.separator(']', "`,` or `]` after a state index")?;
            }
            let close = self.punct(']', "`]` closing the concat list")?;
            list.whole = (start, close.end);
        } else {
            self.ident("range", "a concat list `[2, 3, 4, 5]` or `range(2, 6)`")?;
            self.punct('(', "`(` after range")?;
            let (first, _) = self.int("the range bound")?;
            let (from, to) = if self.is_punct(',') {
                self.next += 1;
                let (second, _) = self.int("the range end")?;
                (first, second)
            } else {
                (0, first)
            };
            let close = self.punct(')', "`)` closing range")?;
            list.whole = (start, close.end);
            list.states = (from..to).collect();
            list.spans = vec![list.whole; list.states.len()];
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2], \
                         reduce=[('max_pool_3x3', 1), ('dil_conv_5x5', 0)], reduce_concat=[2])";

    fn err(text: &str) -> NotationError {
        parse(text).expect_err(text)
    }

    #[test]
    fn parses_and_prints_back() {
        assert_eq!(parse(SMALL).unwrap().to_string(), SMALL);
    }

    #[test]
    fn accepts_range_positional_double_quotes_newlines_and_trailing_commas() {
        let text = "Genotype(\n  [(\"sep_conv_3x3\", 0), ('skip_connect', 1,),],\n  range(2, 3),\n  \
                    reduce = [('max_pool_3x3', 1), ('dil_conv_5x5', 0)],\n  reduce_concat=range(3),\n)\n";
        let g = parse(text).unwrap();
        assert_eq!(g.normal_concat, vec![2]);
        assert_eq!(g.reduce_concat, vec![0, 1, 2]);
        assert_eq!(g.reduce[1], (DartsOp::DilConv5x5, 0));
    }

    #[test]
    fn unknown_op_is_named_with_its_column() {
        let text = "Genotype(normal=[('sep_conv_4x4', 0)])";
        assert_eq!(
            err(text),
            NotationError::UnknownOp {
                token: "sep_conv_4x4".into(),
                pos: TextPos { offset: 18, line: 1, column: 19 }
            }
        );
        assert!(err(text).to_string().contains("unknown op `sep_conv_4x4` at line 1, column 19"));
    }

    #[test]
    fn bad_tokens_are_named() {
        let cases: [(&str, &str); 9] = [
            ("Genotipe(normal=[])", "`Genotipe`"),
            ("Genotype(normal=[('sep_conv_3x3' 0)])", "`0`"),
            ("Genotype(normal=[('sep_conv_3x3', -1)])", "`-`"),
            ("Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2, x])", "`x`"),
            ("Genotype(normal=[('sep_conv_3x3, 0)])", "`'sep_conv_3x3, 0)])`"),
            ("Genotype(nromal=[])", "`nromal`"),
            ("Genotype(normal=[], normal=[])", "`normal`"),
            ("Genotype(normal=[], [2])", "`[`"),
            (&SMALL.replace("reduce_concat=[2])", "reduce_concat=[2]) extra"), "`extra`"),
        ];
        for (text, token) in cases {
            let message = err(text).to_string();
            assert!(message.contains(token), "{text}: {message}");
            assert!(message.contains("column"), "{text}: {message}");
        }
    }

    #[test]
    fn truncated_text_says_what_was_expected() {
        let message = err("Genotype(normal=[('sep_conv_3x3', 0)").to_string();
        assert!(message.contains("text ends") && message.contains("`,` or `]`"), "{message}");
    }

    #[test]
    fn missing_field_is_named() {
        let text = "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2])";
        assert!(matches!(err(text), NotationError::MissingField { field: "reduce", .. }));
    }

    #[test]
    fn invalid_structure_points_at_the_token() {
        let bad_input = SMALL.replace("('skip_connect', 1)", "('skip_connect', 2)");
        match err(&bad_input) {
            NotationError::Invalid {
                reason: InvalidGenotype::InputOutOfRange { input: 2, .. },
                token,
                pos,
            } => {
                assert_eq!(token, "2");
                assert_eq!(&bad_input[pos.offset..pos.offset + 1], "2");
            }
            other => panic!("{other:?}"),
        }
        let odd = SMALL.replace(", ('skip_connect', 1)", "");
        assert!(matches!(
            err(&odd),
            NotationError::Invalid { reason: InvalidGenotype::BadGeneCount { count: 1, .. }, .. }
        ));
        let concat = SMALL.replace("normal_concat=[2]", "normal_concat=[2, 7]");
        match err(&concat) {
            NotationError::Invalid {
                reason: InvalidGenotype::ConcatOutOfRange { state: 7, .. },
                token,
                ..
            } => {
                assert_eq!(token, "7")
            }
            other => panic!("{other:?}"),
        }
        let range = SMALL.replace("normal_concat=[2]", "normal_concat=range(2, 6)");
        match err(&range) {
            NotationError::Invalid { token, .. } => assert_eq!(token, "range(2, 6)"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn huge_number_is_rejected() {
        let text = SMALL.replace("('skip_connect', 1)", "('skip_connect', 99999999999999999999999)");
        assert!(matches!(err(&text), NotationError::NumberTooLarge { .. }));
    }
}
