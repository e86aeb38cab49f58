//! Deciding how a command line is launched, pure (`shinken/action.py` `execute__`, semantics §5.2):
//! through `/bin/sh -c` when it holds a shell metacharacter, else split like Python's
//! `shlex.split` (POSIX mode) and exec'd directly.

use std::fmt;

/// The characters that send a command line through the shell (Shinken's `shellchars`).
pub const SHELL_CHARS: &[char] = &[
    '!', '$', '^', '&', '*', '(', ')', '~', '[', ']', '|', '{', '}', ';', '<', '>', '?', '`',
];

/// The shell used for shell-mode commands.
pub const SHELL: &str = "/bin/sh";

/// How to launch a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// `/bin/sh -c <line>`.
    Shell(String),
    /// Exec `argv[0]` directly (PATH lookup if it holds no `/`), never empty.
    Direct(Vec<String>),
}

/// Why a command line cannot be split (the messages are Python shlex's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// A quote was opened and never closed.
    NoClosingQuotation,
    /// The line ends with a lone backslash.
    NoEscapedCharacter,
    /// Nothing but whitespace.
    Empty,
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SplitError::NoClosingQuotation => "No closing quotation",
            SplitError::NoEscapedCharacter => "No escaped character",
            SplitError::Empty => "empty command line",
        })
    }
}

impl std::error::Error for SplitError {}

/// Whether the line holds any of [`SHELL_CHARS`] (anywhere, quoted or not, as Shinken tests it).
pub fn needs_shell(command_line: &str) -> bool {
    command_line.contains(SHELL_CHARS)
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Splits like Python's `shlex.split(s)` (POSIX mode, no comments): whitespace separates words;
/// `'...'` is literal; inside `"..."` a backslash escapes only `"` and `\` (otherwise it is kept);
/// outside quotes a backslash escapes any character; adjacent pieces join into one word; `''`
/// yields an empty word.
pub fn split(command_line: &str) -> Result<Vec<String>, SplitError> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Between,
        Word,
        Single,
        Double,
    }
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut state = State::Between;
    let mut chars = command_line.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            State::Between | State::Word => {
                if is_space(c) {
                    if state == State::Word {
                        words.push(std::mem::take(&mut cur));
                        state = State::Between;
                    }
                } else if c == '\\' {
                    match chars.next() {
                        Some(n) => cur.push(n),
                        None => return Err(SplitError::NoEscapedCharacter),
                    }
                    state = State::Word;
                } else if c == '\'' {
                    state = State::Single;
                } else if c == '"' {
                    state = State::Double;
                } else {
                    cur.push(c);
                    state = State::Word;
                }
            }
            State::Single => {
                if c == '\'' {
                    state = State::Word;
                } else {
                    cur.push(c);
                }
            }
            State::Double => {
                if c == '"' {
                    state = State::Word;
                } else if c == '\\' {
                    match chars.peek() {
                        Some(&n) if n == '"' || n == '\\' => {
                            cur.push(n);
                            chars.next();
                        }
                        Some(_) => cur.push('\\'),
                        None => return Err(SplitError::NoEscapedCharacter),
                    }
                } else {
                    cur.push(c);
                }
            }
        }
    }
    match state {
        State::Single | State::Double => Err(SplitError::NoClosingQuotation),
        State::Word => {
            words.push(cur);
            Ok(words)
        }
        State::Between => Ok(words),
    }
}

/// Decides how to launch `command_line`. An error means it is neither shell material nor a valid
/// word list (Shinken: output "Not a valid shell command: <reason>", exit 3).
pub fn plan(command_line: &str) -> Result<Launch, SplitError> {
    if needs_shell(command_line) {
        return Ok(Launch::Shell(command_line.to_string()));
    }
    let argv = split(command_line)?;
    if argv.is_empty() {
        return Err(SplitError::Empty);
    }
    Ok(Launch::Direct(argv))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(line: &str) -> Vec<String> {
        split(line).unwrap()
    }

    #[test]
    fn every_shell_char_forces_the_shell() {
        for c in SHELL_CHARS {
            let line = format!("/bin/echo a{c}b");
            assert_eq!(plan(&line), Ok(Launch::Shell(line.clone())), "{c}");
        }
        assert!(needs_shell("echo `id`"));
        assert!(needs_shell("echo a | tr a b"));
        // Even quoted, as Shinken tests the raw line.
        assert!(needs_shell("check 'a;b'"));
    }

    #[test]
    fn plain_lines_are_direct() {
        assert!(!needs_shell(
            "/usr/lib/nagios/plugins/check_dummy 2 \"boom\" -x 'y z' a=b,c:d/e%f#g@h+i"
        ));
        assert_eq!(
            plan("/usr/lib/nagios/plugins/check_dummy 2 \"boom\""),
            Ok(Launch::Direct(vec![
                "/usr/lib/nagios/plugins/check_dummy".into(),
                "2".into(),
                "boom".into()
            ]))
        );
    }

    #[test]
    fn whitespace_separates_words() {
        assert_eq!(s("  a \t b\r\nc  "), vec!["a", "b", "c"]);
        assert_eq!(s(""), Vec::<String>::new());
        assert_eq!(plan("   "), Err(SplitError::Empty));
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(s(r#"a 'b c' 'd\e' 'f"g'"#), vec!["a", "b c", r"d\e", "f\"g"]);
    }

    #[test]
    fn double_quotes_escape_only_quote_and_backslash() {
        assert_eq!(s(r#""a \"b\" \\ \n c""#), vec![r#"a "b" \ \n c"#]);
        assert_eq!(s(r#""it's""#), vec!["it's"]);
    }

    #[test]
    fn backslash_outside_quotes_escapes_anything() {
        assert_eq!(s(r"a\ b c\\d \'e"), vec!["a b", r"c\d", "'e"]);
        assert_eq!(s(r"\x"), vec!["x"]);
    }

    #[test]
    fn adjacent_pieces_join_and_empty_quotes_make_words() {
        assert_eq!(s(r#"-w"80"'%' x'' '' """#), vec!["-w80%", "x", "", ""]);
    }

    #[test]
    fn non_ascii_words() {
        assert_eq!(s("check_x --name 'café crème'"), vec!["check_x", "--name", "café crème"]);
    }

    #[test]
    fn split_errors() {
        assert_eq!(split("a 'b"), Err(SplitError::NoClosingQuotation));
        assert_eq!(split("a \"b"), Err(SplitError::NoClosingQuotation));
        assert_eq!(split("a \"b\\"), Err(SplitError::NoEscapedCharacter));
        assert_eq!(split("a b\\"), Err(SplitError::NoEscapedCharacter));
        assert_eq!(SplitError::NoClosingQuotation.to_string(), "No closing quotation");
    }
}
