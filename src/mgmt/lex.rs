//! The request tokeniser: `dynar_simple_lex` of the reference in its
//! "quote" mode (`qdevices/dynar-simple-lex.c`), rewritten as a small state
//! machine over bytes.
//!
//! Rules, exactly as the reference applies them:
//!
//! * tokens are separated by space, tab, form feed and vertical tab;
//! * CR or LF ends the line: every token after it is empty;
//! * outside quotes, `\x` stands for `x` (any byte, space and quote
//!   included); a backslash right before the end of the line is dropped;
//! * `"` starts and ends a quoted part, which may be glued to unquoted
//!   parts (`a"b c"d` is the one token `ab cd`); inside quotes `\"` and
//!   `\\` are escapes, any other `\x` keeps its backslash, and CR/LF still
//!   end the line;
//! * a NUL byte is an ordinary byte of a token. The reference then reads
//!   every token as a C string, so [`c_str`] cuts it at the first NUL.
//!
//! The end of the input behaves like the end of the line: [`Lexer::next_token`]
//! returns empty tokens from then on. An empty quoted token (`""`) is
//! indistinguishable from the end, as in the reference.

/// Whether `b` separates tokens (the reference's `dynar_simple_lex_is_space`,
/// locale-independent). CR and LF are in the set but end the line.
const fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

const fn is_line_end(b: u8) -> bool {
    matches!(b, b'\n' | b'\r')
}

/// The part of a token the reference sees: everything before the first NUL.
#[must_use]
pub fn c_str(token: &[u8]) -> &[u8] {
    token
        .iter()
        .position(|&b| b == 0)
        .and_then(|n| token.get(..n))
        .unwrap_or(token)
}

/// Splits one request line into tokens, left to right.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    input: &'a [u8],
    pos: usize,
}

/// Where the state machine is inside the current token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the token: skipping separators.
    Skip,
    /// In an unquoted part.
    Word,
    /// After a backslash in an unquoted part.
    WordEscape,
    /// In a quoted part.
    Quoted,
    /// After a backslash in a quoted part.
    QuotedEscape,
}

impl<'a> Lexer<'a> {
    /// A tokeniser over `input` (the bytes received, possibly more than one
    /// line; only the first line is ever read).
    #[must_use]
    pub const fn new(input: &'a [u8]) -> Self {
        Self { input, pos: 0 }
    }

    /// The next token; empty at the end of the line.
    pub fn next_token(&mut self) -> Vec<u8> {
        let mut token = Vec::new();
        let mut state = State::Skip;
        loop {
            let Some(&b) = self.input.get(self.pos) else {
                // End of input ends every state; a pending backslash is dropped.
                return token;
            };
            match state {
                State::Skip => {
                    if is_line_end(b) {
                        return token;
                    }
                    if is_space(b) {
                        self.pos += 1;
                    } else {
                        state = State::Word;
                    }
                }
                State::Word => match b {
                    b'\\' => {
                        self.pos += 1;
                        state = State::WordEscape;
                    }
                    b'"' => {
                        self.pos += 1;
                        state = State::Quoted;
                    }
                    _ if is_space(b) => return token,
                    _ => {
                        self.pos += 1;
                        token.push(b);
                    }
                },
                State::WordEscape => {
                    if is_line_end(b) {
                        return token;
                    }
                    self.pos += 1;
                    token.push(b);
                    state = State::Word;
                }
                State::Quoted => match b {
                    b'\\' => {
                        self.pos += 1;
                        state = State::QuotedEscape;
                    }
                    b'"' => {
                        self.pos += 1;
                        state = State::Word;
                    }
                    _ if is_line_end(b) => return token,
                    _ => {
                        self.pos += 1;
                        token.push(b);
                    }
                },
                State::QuotedEscape => {
                    if is_line_end(b) {
                        return token;
                    }
                    if b != b'\\' && b != b'"' {
                        token.push(b'\\');
                    }
                    token.push(b);
                    self.pos += 1;
                    state = State::Quoted;
                }
            }
        }
    }
}

/// Quotes `name` the way the reference tool does before sending it
/// (`dynar_str_quote_cat`): in double quotes, with `"` and `\` escaped.
#[must_use]
pub fn quote(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    out.push(b'"');
    for &b in name {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(line: &[u8]) -> Vec<Vec<u8>> {
        let mut lex = Lexer::new(line);
        let mut out = Vec::new();
        for _ in 0..16 {
            let t = lex.next_token();
            if t.is_empty() {
                break;
            }
            out.push(t);
        }
        out
    }

    fn strs(line: &[u8]) -> Vec<String> {
        tokens(line)
            .into_iter()
            .map(|t| String::from_utf8_lossy(&t).into_owned())
            .collect()
    }

    #[test]
    fn separators_and_line_ends() {
        let cases: &[(&[u8], &[&str])] = &[
            (b"status\n", &["status"]),
            (
                b"  \t status \x0b verbose\x0c x\n",
                &["status", "verbose", "x"],
            ),
            (b"status\rjunk\n", &["status"]),
            (b"status\njunk\n", &["status"]),
            (b"\n", &[]),
            (b"\r\n", &[]),
            (b"", &[]),
            (b"no newline at all", &["no", "newline", "at", "all"]),
        ];
        for (line, want) in cases {
            assert_eq!(strs(line), *want, "{line:?}");
        }
    }

    #[test]
    fn backslash_outside_quotes() {
        let cases: &[(&[u8], &[&str])] = &[
            (b"st\\atus\n", &["status"]),
            (b"a\\ b c\n", &["a b", "c"]),
            (b"a\\\"b\n", &["a\"b"]),
            (b"a\\\\b\n", &["a\\b"]),
            (b"a\\\n", &["a"]),
            (b"a\\", &["a"]),
            (b"\\\n", &[]),
        ];
        for (line, want) in cases {
            assert_eq!(strs(line), *want, "{line:?}");
        }
    }

    #[test]
    fn quotes() {
        let cases: &[(&[u8], &[&str])] = &[
            (b"\"sta\"tus\n", &["status"]),
            (b"a\"b c\"d e\n", &["ab cd", "e"]),
            (b"list cluster \"a\\\"b\" \n", &["list", "cluster", "a\"b"]),
            (b"\"a\\\\b\"\n", &["a\\b"]),
            (b"\"\\q\"\n", &["\\q"]),
            (b"\"unterminated\n", &["unterminated"]),
            (b"\"line\rend\"\n", &["line"]),
            (b"\"a\\\n", &["a"]),
            (b"\"tab\there\"\n", &["tab\there"]),
        ];
        for (line, want) in cases {
            assert_eq!(strs(line), *want, "{line:?}");
        }
    }

    #[test]
    fn empty_quotes_look_like_the_end() {
        let mut lex = Lexer::new(b"list \"\" verbose\n");
        assert_eq!(lex.next_token(), b"list");
        assert_eq!(lex.next_token(), b"");
        assert_eq!(lex.next_token(), b"verbose");
        assert_eq!(lex.next_token(), b"");
        assert_eq!(lex.next_token(), b"");
    }

    #[test]
    fn nul_bytes_stay_in_the_token_and_c_str_cuts() {
        let t = tokens(b"bog\0us x\n");
        assert_eq!(t[0], b"bog\0us");
        assert_eq!(c_str(&t[0]), b"bog");
        assert_eq!(c_str(b"\0abc"), b"");
        assert_eq!(c_str(b"abc"), b"abc");
    }

    #[test]
    fn quote_round_trips_through_the_lexer() {
        for name in [
            &b"testcluster"[..],
            b"a\"b",
            b"back\\slash",
            b"with space",
            b"",
            b"\\\"",
        ] {
            let mut line = b"list cluster ".to_vec();
            line.extend(quote(name));
            line.extend(b" \n");
            let mut lex = Lexer::new(&line);
            assert_eq!(lex.next_token(), b"list");
            assert_eq!(lex.next_token(), b"cluster");
            assert_eq!(lex.next_token(), name);
        }
        assert_eq!(quote(b"a\"b\\c"), b"\"a\\\"b\\\\c\"");
    }
}
