//! The cluster's shared bearer token.
//!
//! Every daemon of a cluster reads the same token file (by default `shinken.token` beside the main
//! cfg, see [`default_token_path`]); every call under `/v1/` carries it as
//! `Authorization: Bearer <token>`. The arbiter creates the file when it is absent
//! ([`ensure_token`]); the other daemons only read it ([`load_token`]).
//!
//! The file is a secret: like ssh with a private key, [`load_token`] refuses a file that its group
//! or others may access (any bit of `0o077`), and [`ensure_token`] creates it `0600` in one step.
//! In a pod, mount the Secret with `defaultMode: 0400` (0644, the Kubernetes default, is refused).
//!
//! [`Token`] never prints its value (`Debug` shows `Token(<redacted>)`, there is no `Display`), and
//! [`Token::verify`] compares in constant time.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File name of the token, beside the main cfg file.
pub const TOKEN_FILE_NAME: &str = "shinken.token";

/// Number of random bytes in a generated token (hex-encoded: 64 characters).
pub const TOKEN_RANDOM_BYTES: usize = 32;

/// Longest token accepted, in bytes. A token travels in an HTTP header; anything this long is a
/// wrong file, not a token.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The shared secret. Cheap to clone (shared, immutable).
#[derive(Clone)]
pub struct Token {
    /// The token's text: visible ASCII only, so that it fits an HTTP header value as is.
    value: Arc<str>,
}

impl Token {
    /// A token from its text (leading and trailing whitespace removed). Refuses an empty text, a
    /// text longer than [`MAX_TOKEN_LEN`] or one with characters other than visible ASCII.
    pub fn new(text: &str) -> Result<Token, TokenError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TokenError::Empty { path: None });
        }
        if let Some(reason) = invalid_reason(text) {
            return Err(TokenError::Invalid { path: None, reason });
        }
        Ok(Token { value: Arc::from(text) })
    }

    /// A fresh token: [`TOKEN_RANDOM_BYTES`] bytes from `/dev/urandom`, hex-encoded.
    pub fn generate() -> io::Result<Token> {
        let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
        File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        Ok(Token {
            value: Arc::from(hex(&bytes)),
        })
    }

    /// The secret itself, to put in a request header. Never log it.
    pub fn secret(&self) -> &str {
        &self.value
    }

    /// Whether `presented` is this token, in time independent of where they differ (the length
    /// of the expected token is not hidden, its content is).
    pub fn verify(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.value.as_bytes(), presented)
    }

    /// Whether an `Authorization` header value is `Bearer <this token>` (scheme case-insensitive,
    /// as RFC 7235 says).
    pub fn verify_bearer(&self, header: &[u8]) -> bool {
        const SCHEME: &[u8] = b"bearer ";
        if header.len() < SCHEME.len() || !header[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
            return false;
        }
        let presented = header[SCHEME.len()..].trim_ascii();
        self.verify(presented)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Compares two byte strings without an early exit on the first difference. A length mismatch
/// still walks the presented bytes, so the time depends only on the lengths.
fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != presented.len());
    for (i, &byte) in presented.iter().enumerate() {
        let want = if expected.is_empty() { 0 } else { expected[i % expected.len()] };
        diff |= want ^ byte;
    }
    std::hint::black_box(diff) == 0
}

/// Why a text cannot be a token, if it cannot.
fn invalid_reason(text: &str) -> Option<String> {
    if text.len() > MAX_TOKEN_LEN {
        return Some(format!("longer than {MAX_TOKEN_LEN} bytes"));
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Some("contains characters other than visible ASCII (spaces, control or non-ASCII characters)".to_string());
    }
    None
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Why a token could not be loaded or created. Every variant names the file.
#[derive(Debug)]
pub enum TokenError {
    /// The file could not be opened, read or created.
    Io { path: PathBuf, source: io::Error },
    /// The file (or text) holds nothing but whitespace.
    Empty { path: Option<PathBuf> },
    /// Group or others may access the file (mode has bits of `0o077`).
    TooOpen { path: PathBuf, mode: u32 },
    /// The path is not a regular file (a directory, a device...).
    NotAFile { path: PathBuf },
    /// The content cannot be a token.
    Invalid { path: Option<PathBuf>, reason: String },
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Io { path, source } => write!(f, "token file {}: {source}", path.display()),
            TokenError::Empty { path: Some(path) } => write!(f, "token file {} is empty", path.display()),
            TokenError::Empty { path: None } => f.write_str("the token is empty"),
            TokenError::TooOpen { path, mode } => write!(
                f,
                "token file {}: permissions {:04o} are too open (group or others can access it); \
                 it must be readable by its owner only: chmod 600 {}",
                path.display(),
                mode & 0o7777,
                path.display()
            ),
            TokenError::NotAFile { path } => write!(f, "token file {} is not a regular file", path.display()),
            TokenError::Invalid { path: Some(path), reason } => write!(f, "token file {}: {reason}", path.display()),
            TokenError::Invalid { path: None, reason } => write!(f, "invalid token: {reason}"),
        }
    }
}

impl std::error::Error for TokenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TokenError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `shinken.token` beside the main cfg file (`/etc/shinken/shinken.cfg` ->
/// `/etc/shinken/shinken.token`).
pub fn default_token_path(main_cfg: &Path) -> PathBuf {
    match main_cfg.parent() {
        Some(dir) => dir.join(TOKEN_FILE_NAME),
        None => PathBuf::from(TOKEN_FILE_NAME),
    }
}

/// Reads the token file: trims whitespace; refuses an empty file, a file group or others may
/// access, anything but a regular file (symbolic links are followed, as Kubernetes mounts
/// Secrets through them).
pub fn load_token(path: &Path) -> Result<Token, TokenError> {
    let io_err = |source| TokenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    // The checks look at the file opened, not at the path again (no race with a rename).
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(TokenError::NotAFile { path: path.to_path_buf() });
    }
    let mode = meta.mode();
    if mode & 0o077 != 0 {
        return Err(TokenError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut text = String::new();
    (&mut file)
        .take(MAX_TOKEN_LEN as u64 + 1024)
        .read_to_string(&mut text)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                TokenError::Invalid {
                    path: Some(path.to_path_buf()),
                    reason: "not UTF-8 text".to_string(),
                }
            } else {
                io_err(e)
            }
        })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(TokenError::Empty {
            path: Some(path.to_path_buf()),
        });
    }
    if let Some(reason) = invalid_reason(text) {
        return Err(TokenError::Invalid {
            path: Some(path.to_path_buf()),
            reason,
        });
    }
    Ok(Token { value: Arc::from(text) })
}

/// Returns the token of `path`, creating the file first when it is absent: a fresh random token
/// ([`Token::generate`]), mode `0600`.
///
/// Creation is atomic: the token is written to a temporary file opened with `O_CREAT|O_EXCL`
/// and mode `0600`, synced, then linked to `path` (`link(2)` fails when `path` exists). So a
/// reader never sees a half-written file, and when two processes race, both end up with the
/// token of the one that linked first. On a filesystem without hard links the file is created
/// in place with `O_EXCL`.
pub fn ensure_token(path: &Path) -> Result<Token, TokenError> {
    match load_token(path) {
        Err(TokenError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    let io_err = |source| TokenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let token = Token::generate().map_err(|e| TokenError::Io {
        path: PathBuf::from("/dev/urandom"),
        source: e,
    })?;
    let content = format!("{}\n", token.secret());

    let tmp = temporary_path(path);
    let written = write_new(&tmp, content.as_bytes());
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_parent(path);
            Ok(token)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load_token(path),
        Err(_) => match write_new(path, content.as_bytes()) {
            Ok(()) => Ok(token),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load_token(path),
            Err(e) => Err(io_err(e)),
        },
    }
}

/// `<dir>/.<name>.<pid>.tmp`, in the same directory (so a hard link can publish it).
fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| TOKEN_FILE_NAME.to_string());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Creates `path` (failing if it exists), mode 0600, writes `content` and syncs it.
fn write_new(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

/// Makes the new directory entry durable; best effort.
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_accepts_only_the_exact_token() {
        let token = Token::new("s3cret-token").unwrap();
        assert!(token.verify(b"s3cret-token"));
        assert!(!token.verify(b"s3cret-tokem"));
        assert!(!token.verify(b"s3cret-toke"));
        assert!(!token.verify(b"s3cret-token2"));
        assert!(!token.verify(b""));
        assert!(!token.verify(b"S3CRET-TOKEN"));
    }

    #[test]
    fn verify_bearer_header() {
        let token = Token::new("abc123").unwrap();
        assert!(token.verify_bearer(b"Bearer abc123"));
        assert!(token.verify_bearer(b"bearer abc123"));
        assert!(token.verify_bearer(b"BEARER  abc123 "));
        assert!(!token.verify_bearer(b"Basic abc123"));
        assert!(!token.verify_bearer(b"Bearer"));
        assert!(!token.verify_bearer(b"Bearer "));
        assert!(!token.verify_bearer(b"abc123"));
        assert!(!token.verify_bearer(b"Bearer abc1234"));
    }

    #[test]
    fn constant_time_eq_edge_cases() {
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(!constant_time_eq(b"a", b""));
        assert!(constant_time_eq(b"ab", b"ab"));
        // Same bytes repeated must not pass for a longer input.
        assert!(!constant_time_eq(b"ab", b"abab"));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let token = Token::new("do-not-print-me").unwrap();
        let shown = format!("{token:?} {:?} {token:#?}", Some(&token));
        assert!(!shown.contains("do-not-print-me"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn new_trims_and_validates() {
        assert_eq!(Token::new("  abc\n").unwrap().secret(), "abc");
        assert!(matches!(Token::new(" \n\t"), Err(TokenError::Empty { .. })));
        assert!(matches!(Token::new("a b"), Err(TokenError::Invalid { .. })));
        assert!(matches!(Token::new("é"), Err(TokenError::Invalid { .. })));
        assert!(matches!(
            Token::new(&"x".repeat(MAX_TOKEN_LEN + 1)),
            Err(TokenError::Invalid { .. })
        ));
    }

    #[test]
    fn generated_tokens_are_hex_and_distinct() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_eq!(a.secret().len(), 2 * TOKEN_RANDOM_BYTES);
        assert!(a.secret().bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(!a.verify(b.secret().as_bytes()));
    }

    #[test]
    fn default_path_is_beside_the_main_cfg() {
        assert_eq!(
            default_token_path(Path::new("/etc/shinken/shinken.cfg")),
            PathBuf::from("/etc/shinken/shinken.token")
        );
        assert_eq!(default_token_path(Path::new("shinken.cfg")), PathBuf::from("shinken.token"));
    }

    #[test]
    fn error_messages_name_path_and_mode() {
        let e = TokenError::TooOpen {
            path: PathBuf::from("/etc/shinken/shinken.token"),
            mode: 0o100644,
        };
        let text = e.to_string();
        assert!(text.contains("/etc/shinken/shinken.token"), "{text}");
        assert!(text.contains("0644"), "{text}");
    }
}
