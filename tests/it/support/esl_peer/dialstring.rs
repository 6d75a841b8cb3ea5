//! Dial-string grammar of the bridge app and originate API (esl-protocol.md §10.1):
//! `{global}[leg]endpoint,[leg]endpoint|[leg]endpoint`.

/// One leg: its variables (global then per-leg) and the user it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegSpec {
    /// Variables (global `{}` first, then `[]`).
    pub vars: Vec<(String, String)>,
    /// The number/user dialled (`user/1001@host` -> `1001`).
    pub user: String,
    /// The endpoint text as written.
    pub endpoint: String,
}

impl LegSpec {
    /// A variable of this leg.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Groups tried in order (`|`); the legs of a group ring together (`,`).
pub type DialString = Vec<Vec<LegSpec>>;

/// Parse failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialError(pub String);

/// Splits `s` on `sep` outside `{}`/`[]`/quotes.
fn split_top(s: &str, sep: char) -> Vec<String> {
    let (mut depth, mut quote, mut cur, mut out) = (0i32, false, String::new(), Vec::new());
    for c in s.chars() {
        match c {
            '\'' => quote = !quote,
            '{' | '[' | '<' if !quote => depth += 1,
            '}' | ']' | '>' if !quote => depth -= 1,
            _ => {}
        }
        if c == sep && depth == 0 && !quote {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// Parses `k=v,k2='a,b'` into pairs.
fn parse_vars(s: &str) -> Result<Vec<(String, String)>, DialError> {
    split_top(s, ',')
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_owned(), v.trim().trim_matches('\'').to_owned())),
            None => Err(DialError(format!("variable without '=': {p}"))),
        })
        .collect()
}

/// Strips a leading `open..close` block, returning its inside and the rest.
fn take_block(s: &str, open: char, close: char) -> Result<(Option<&str>, &str), DialError> {
    let t = s.trim_start();
    if !t.starts_with(open) {
        return Ok((None, t));
    }
    let end = t
        .find(close)
        .ok_or_else(|| DialError(format!("unclosed {open} in {s}")))?;
    Ok((Some(&t[1..end]), &t[end + 1..]))
}

/// The user part of an endpoint: `user/1001@h`, `sofia/internal/1001@h:5071`, `sofia/gateway/gw/1001`.
pub fn endpoint_user(endpoint: &str) -> Result<String, DialError> {
    let last = endpoint.rsplit('/').next().unwrap_or("");
    let user = last
        .split('@')
        .next()
        .unwrap_or("")
        .trim_start_matches("sip:");
    if user.is_empty() || !endpoint.contains('/') {
        return Err(DialError(format!("bad endpoint {endpoint}")));
    }
    Ok(user.to_owned())
}

/// Parses a full dial string.
pub fn parse(s: &str) -> Result<DialString, DialError> {
    let (global, rest) = take_block(s, '{', '}')?;
    let global = global.map(parse_vars).transpose()?.unwrap_or_default();
    let mut groups = Vec::new();
    for group in split_top(rest, '|') {
        let mut legs = Vec::new();
        for leg in split_top(&group, ',') {
            let (local, endpoint) = take_block(&leg, '[', ']')?;
            let mut vars = global.clone();
            vars.extend(local.map(parse_vars).transpose()?.unwrap_or_default());
            let endpoint = endpoint.trim().to_owned();
            legs.push(LegSpec {
                vars,
                user: endpoint_user(&endpoint)?,
                endpoint,
            });
        }
        groups.push(legs);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_groups_legs_and_variables() {
        let d = parse("{ignore_early_media=true,leg_timeout=15}[origination_uuid=x]user/1001@h,user/1002@h|[leg_timeout=3]sofia/internal/1003@127.0.0.1:5071").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].len(), 2);
        assert_eq!(d[0][0].var("origination_uuid"), Some("x"));
        assert_eq!(d[0][1].var("leg_timeout"), Some("15"));
        assert_eq!(d[1][0].var("leg_timeout"), Some("3"));
        assert_eq!(d[1][0].user, "1003");
        assert!(parse("{a=1").is_err());
    }
}
