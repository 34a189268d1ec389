//! Glob patterns for excludes: `*` matches within one path segment, `**`
//! across segments, `?` one character, `[abc]`/`[a-z]` a class. Pure.

pub fn is_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

pub fn matches(pattern: &str, path: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = path.chars().collect();
    match_at(&p, &s)
}

fn match_at(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') if p.get(1) == Some(&'*') => {
            let rest = &p[2..];
            (0..=s.len()).any(|i| match_at(rest, &s[i..]))
        }
        Some('*') => {
            let rest = &p[1..];
            for i in 0..=s.len() {
                if match_at(rest, &s[i..]) {
                    return true;
                }
                if i < s.len() && s[i] == '/' {
                    break;
                }
            }
            false
        }
        Some('?') => !s.is_empty() && s[0] != '/' && match_at(&p[1..], &s[1..]),
        Some('[') => {
            let Some(end) = p.iter().position(|&c| c == ']') else {
                return !s.is_empty() && s[0] == '[' && match_at(&p[1..], &s[1..]);
            };
            let Some(&c) = s.first() else { return false };
            let class = &p[1..end];
            let (neg, class) = match class.first() {
                Some('!') | Some('^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != neg && match_at(&p[end + 1..], &s[1..])
        }
        Some(&c) => !s.is_empty() && s[0] == c && match_at(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn table() {
        let cases = [
            ("/a/*.tmp", "/a/x.tmp", true),
            ("/a/*.tmp", "/a/b/x.tmp", false),
            ("/a/**.tmp", "/a/b/x.tmp", true),
            ("/**/cache", "/x/y/cache", true),
            ("/a/?", "/a/b", true),
            ("/a/?", "/a/bc", false),
            ("/a/[bc]", "/a/c", true),
            ("/a/[!bc]", "/a/c", false),
            ("/a/[a-f]x", "/a/ex", true),
            ("/a/b", "/a/b", true),
            ("/a/b", "/a/bb", false),
        ];
        for (p, s, want) in cases {
            assert_eq!(matches(p, s), want, "{p} ~ {s}");
        }
    }
}
