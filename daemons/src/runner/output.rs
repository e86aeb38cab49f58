//! Plugin output handling, pure: how the bytes a finished process wrote become Shinken's
//! `output`, `long_output`, `perf_data` and exit status (`shinken/action.py`, `get_outputs` and
//! `check_finished`; semantics §5.4 and §3.5).

/// The three text fields a check result carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedOutput {
    /// First line, left of the first unescaped `|`, trimmed.
    pub output: String,
    /// The following lines (left parts), trimmed, joined with `\n`.
    pub long_output: String,
    /// Every perfdata piece, trimmed, joined with one space.
    pub perf_data: String,
}

/// How a process ended, as far as output handling is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// Normal exit with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// The finished result: mapped exit status plus parsed text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished {
    /// 0..=3.
    pub exit_status: u8,
    pub parsed: ParsedOutput,
}

const PROTECT_PIPE: &str = "\u{0}__PROTECT_PIPE__\u{0}";

/// Decodes bytes as UTF-8, dropping (not replacing) invalid sequences.
pub fn decode_dropping_invalid(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
    }
    out
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Python's `str.strip()` (whitespace both sides).
fn strip(s: &str) -> &str {
    s.trim()
}

fn unprotect(s: &str) -> String {
    strip(s).replace(PROTECT_PIPE, "|")
}

/// Splits plugin text into output / long output / perfdata (§5.4), after truncating it to
/// `max_len` bytes (at a char boundary).
///
/// Rules, in order: truncate; `\|` is a literal `|`; line 1 left of the first `|` is the output and
/// right of it (up to a second `|`, as Shinken does) the perfdata; the following lines are long
/// output until a line holding a `|`, whose left part is long output and right part perfdata;
/// every later line is perfdata. Perfdata pieces are joined with one space, long output lines
/// with `\n`.
///
/// Deliberate differences from Shinken: a final newline does not produce an empty trailing
/// long-output line / perfdata piece, and empty perfdata pieces are skipped (Shinken would leave
/// trailing or doubled spaces).
pub fn parse_output(text: &str, max_len: usize) -> ParsedOutput {
    let text = truncate_at_char_boundary(text, max_len);
    let text = text.strip_suffix('\n').unwrap_or(text);
    let protected = text.replace("\\|", PROTECT_PIPE);
    let mut lines = protected.split('\n');

    let first = lines.next().unwrap_or("");
    let mut parts = first.split('|');
    let output = unprotect(parts.next().unwrap_or(""));
    let mut perf: Vec<String> = Vec::new();
    if let Some(p) = parts.next() {
        // Shinken keeps only the text between the first and second `|` of line 1.
        perf.push(unprotect(p));
    }

    let mut long: Vec<String> = Vec::new();
    let mut in_perfdata = false;
    for line in lines {
        if in_perfdata {
            perf.push(unprotect(line));
            continue;
        }
        match line.split_once('|') {
            Some((left, right)) => {
                long.push(unprotect(left));
                perf.push(unprotect(right));
                in_perfdata = true;
            }
            None => long.push(unprotect(line)),
        }
    }

    let perf_data = perf.into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ");
    ParsedOutput {
        output,
        long_output: long.join("\n"),
        perf_data,
    }
}

/// The conventional name of a signal, for the note added to stderr.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => "signal",
    }
}

/// Whether stderr shows the shell itself failed to parse the command (Shinken's three
/// patterns): such a run is UNKNOWN whatever the shell's exit code.
pub fn is_shell_syntax_error(stderr: &str) -> bool {
    stderr.contains("sh: -c: line 0: unexpected EOF while looking for matching")
        || (stderr.contains("sh: -c:") && stderr.contains(": Syntax"))
        || stderr.contains("Syntax error: Unterminated quoted string")
}

/// Maps a process end plus its captured streams to the result Shinken's worker reports
/// (`check_finished`):
///
/// 1. killed by signal N: `" signaled #N (NAME)"` is appended to stderr, status 3 (Shinken notes
///    only SIGSEGV; every signal is noted here);
/// 2. exit code outside 0..=3 and blank stderr: `"Abnormal termination with code: N"` is appended to
///    stderr; the status becomes 3;
/// 3. a shell syntax error in stderr: stdout += stderr, status 3;
/// 4. blank stdout: stderr is used instead;
/// 5. the chosen text is truncated to `max_len` bytes and parsed ([`parse_output`]).
pub fn finish(termination: Termination, stdout: &[u8], stderr: &[u8], max_len: usize) -> Finished {
    let mut out = decode_dropping_invalid(stdout);
    let mut err = decode_dropping_invalid(stderr);
    let mut status: i32 = match termination {
        Termination::Exited(code) => code,
        Termination::Signaled(sig) => {
            err.push_str(&format!(" signaled #{sig} ({})", signal_name(sig)));
            -sig
        }
    };
    let valid = (0..=3).contains(&status);
    if !valid && strip(&err).is_empty() {
        err.push_str(&format!("Abnormal termination with code: {status}"));
    }
    if is_shell_syntax_error(&err) {
        out.push_str(&err);
        status = 3;
    }
    if !(0..=3).contains(&status) {
        status = 3;
    }
    let text = if strip(&out).is_empty() { &err } else { &out };
    Finished {
        exit_status: status as u8,
        parsed: parse_output(text, max_len),
    }
}

/// Parses whatever was captured before a timeout kill: stdout, or stderr if stdout is blank.
pub fn parse_captured(stdout: &[u8], stderr: &[u8], max_len: usize) -> ParsedOutput {
    let out = decode_dropping_invalid(stdout);
    if strip(&out).is_empty() {
        parse_output(&decode_dropping_invalid(stderr), max_len)
    } else {
        parse_output(&out, max_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ParsedOutput {
        parse_output(s, 8192)
    }

    #[test]
    fn single_line_without_perfdata() {
        let r = p("OK - all good\n");
        assert_eq!(r.output, "OK - all good");
        assert_eq!(r.long_output, "");
        assert_eq!(r.perf_data, "");
    }

    #[test]
    fn first_line_splits_output_and_perfdata_and_strips() {
        let r = p("  DISK OK  |  /=10MB;20;30  ");
        assert_eq!(r.output, "DISK OK");
        assert_eq!(r.perf_data, "/=10MB;20;30");
        assert_eq!(r.long_output, "");
    }

    #[test]
    fn first_line_second_pipe_is_dropped_like_shinken() {
        let r = p("OK | a=1 | b=2");
        assert_eq!(r.output, "OK");
        assert_eq!(r.perf_data, "a=1");
    }

    #[test]
    fn escaped_pipe_is_literal() {
        let r = p("OK a\\|b | x=1\nlong \\| line");
        assert_eq!(r.output, "OK a|b");
        assert_eq!(r.perf_data, "x=1");
        assert_eq!(r.long_output, "long | line");
    }

    #[test]
    fn long_output_then_perfdata_line_then_all_perfdata() {
        let text = "DISK OK | /=1\nline two\n  line three  \nleft part | /home=2\n/var=3\n  /tmp=4  \n";
        let r = p(text);
        assert_eq!(r.output, "DISK OK");
        assert_eq!(r.long_output, "line two\nline three\nleft part");
        assert_eq!(r.perf_data, "/=1 /home=2 /var=3 /tmp=4");
    }

    #[test]
    fn later_lines_with_pipes_after_perfdata_started_are_kept_whole() {
        let r = p("OK\nl2 | a=1\nb=2 | c=3");
        assert_eq!(r.long_output, "l2");
        assert_eq!(r.perf_data, "a=1 b=2 | c=3");
    }

    #[test]
    fn perfdata_only_on_later_lines() {
        let r = p("OK\nmore\n| a=1");
        assert_eq!(r.output, "OK");
        assert_eq!(r.long_output, "more\n");
        assert_eq!(r.perf_data, "a=1");
    }

    #[test]
    fn blank_lines_inside_long_output_are_kept() {
        let r = p("OK\na\n\nb\n");
        assert_eq!(r.long_output, "a\n\nb");
    }

    #[test]
    fn crlf_is_stripped() {
        let r = p("OK | a=1\r\nline\r\n");
        assert_eq!(r.output, "OK");
        assert_eq!(r.perf_data, "a=1");
        assert_eq!(r.long_output, "line");
    }

    #[test]
    fn empty_text() {
        assert_eq!(p(""), ParsedOutput::default());
        assert_eq!(p("\n"), ParsedOutput::default());
    }

    #[test]
    fn truncation_happens_before_parsing() {
        // The perfdata is beyond the cap, so it never appears.
        let r = parse_output("OK | a=1", 3);
        assert_eq!(r.output, "OK");
        assert_eq!(r.perf_data, "");
        let r = parse_output("OK\nlong | p=1", 7);
        assert_eq!(r.long_output, "long");
        assert_eq!(r.perf_data, "");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        // "é" is two bytes; a cap of 2 falls in the middle of it.
        assert_eq!(truncate_at_char_boundary("aé", 2), "a");
        assert_eq!(truncate_at_char_boundary("aé", 3), "aé");
        assert_eq!(truncate_at_char_boundary("abc", 0), "");
        assert_eq!(parse_output("aébc", 2).output, "a");
    }

    #[test]
    fn invalid_utf8_is_dropped() {
        assert_eq!(decode_dropping_invalid(b"O\xffK \xc3\xa9\xc3"), "OK é");
        let f = finish(Termination::Exited(0), b"OK\xfe\xfe done", b"", 8192);
        assert_eq!(f.parsed.output, "OK done");
    }

    #[test]
    fn exit_codes_zero_to_three_kept() {
        for code in 0..=3 {
            let f = finish(Termination::Exited(code), b"X", b"", 100);
            assert_eq!(f.exit_status, code as u8);
            assert_eq!(f.parsed.output, "X");
        }
    }

    #[test]
    fn other_exit_codes_become_unknown_with_note() {
        let f = finish(Termination::Exited(7), b"", b"", 100);
        assert_eq!(f.exit_status, 3);
        assert_eq!(f.parsed.output, "Abnormal termination with code: 7");
        let f = finish(Termination::Exited(-1), b"", b"", 100);
        assert_eq!(f.exit_status, 3);
        // stdout wins when not blank; stderr not blank means no note.
        let f = finish(Termination::Exited(127), b"", b"sh: 1: nope: not found\n", 100);
        assert_eq!(f.exit_status, 3);
        assert_eq!(f.parsed.output, "sh: 1: nope: not found");
        let f = finish(Termination::Exited(42), b"some output", b"", 100);
        assert_eq!(f.exit_status, 3);
        assert_eq!(f.parsed.output, "some output");
    }

    #[test]
    fn signal_becomes_unknown_with_note() {
        let f = finish(Termination::Signaled(libc::SIGSEGV), b"", b"", 100);
        assert_eq!(f.exit_status, 3);
        assert_eq!(f.parsed.output, "signaled #11 (SIGSEGV)");
        let f = finish(Termination::Signaled(libc::SIGKILL), b"partial", b"", 100);
        assert_eq!(f.exit_status, 3);
        assert_eq!(f.parsed.output, "partial");
    }

    #[test]
    fn stderr_used_when_stdout_blank() {
        let f = finish(Termination::Exited(2), b"  \n \n", b"CRITICAL from stderr | a=1\n", 100);
        assert_eq!(f.exit_status, 2);
        assert_eq!(f.parsed.output, "CRITICAL from stderr");
        assert_eq!(f.parsed.perf_data, "a=1");
        let f = finish(Termination::Exited(1), b"WARN", b"noise", 100);
        assert_eq!(f.parsed.output, "WARN");
    }

    #[test]
    fn shell_syntax_error_is_unknown_and_appended() {
        let f = finish(
            Termination::Exited(2),
            b"",
            b"sh: 1: Syntax error: Unterminated quoted string\n",
            200,
        );
        assert_eq!(f.exit_status, 3);
        assert_eq!(f.parsed.output, "sh: 1: Syntax error: Unterminated quoted string");
        let f = finish(Termination::Exited(1), b"", b"sh: -c: line 1: Syntax error near x", 200);
        assert_eq!(f.exit_status, 3);
        assert!(is_shell_syntax_error(
            "sh: -c: line 0: unexpected EOF while looking for matching `''"
        ));
        assert!(!is_shell_syntax_error("CRITICAL: syntax"));
    }

    #[test]
    fn parse_captured_falls_back_to_stderr() {
        assert_eq!(parse_captured(b"", b"err | p=1", 100).output, "err");
        assert_eq!(parse_captured(b"out", b"err", 100).output, "out");
    }
}
