//! Reading cookies from the `Cookie` request headers without the `cookies` feature
//! of actix-web (and without logging them).

use actix_web::http::header::{HeaderMap, COOKIE};

/// The value of the first cookie named `name` in the request's `Cookie` headers
/// (HTTP/2 may split them), surrounding double quotes removed.
pub(crate) fn find<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    if name.is_empty() {
        return None;
    }
    headers
        .get_all(COOKIE)
        .filter_map(|value| std::str::from_utf8(value.as_bytes()).ok())
        .flat_map(|line| line.split(';'))
        .find_map(|pair| {
            let (n, v) = pair.split_once('=')?;
            (n.trim() == name).then(|| unquote(v.trim()))
        })
}

fn unquote(v: &str) -> &str {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner,
        None => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in lines {
            h.append(COOKIE, line.parse().unwrap());
        }
        h
    }

    #[test]
    fn finds_cookies() {
        let h = headers(&["a=1; sessionid=abc; _ga=GA1.2.3.4", "b=\"q\"; empty="]);
        assert_eq!(find(&h, "sessionid"), Some("abc"));
        assert_eq!(find(&h, "_ga"), Some("GA1.2.3.4"));
        assert_eq!(find(&h, "b"), Some("q"));
        assert_eq!(find(&h, "empty"), Some(""));
        assert_eq!(find(&h, "session"), None);
        assert_eq!(find(&h, "missing"), None);
        assert_eq!(find(&h, ""), None);
    }

    #[test]
    fn first_wins() {
        let h = headers(&["x=first; x=second"]);
        assert_eq!(find(&h, "x"), Some("first"));
    }
}
