//! `--throttle-query`: the check that it is one read-only SELECT (at the flag and when set live), and running it
//! inside a read-only transaction, so that whoever can set it cannot change data with it.

use mysql_async::prelude::Queryable;
use mysql_async::TxOpts;

use crate::engine::plan::alter::single_statement_problem;

/// Words a throttle query may not hold outside quotes: writes to files or variables, locking reads, locks and
/// waits, reading server files.
const REFUSED_WORDS: &[&str] = &[
    "into", "update", "share", "lock", "get_lock", "release_lock", "release_all_locks", "is_used_lock",
    "load_file", "sleep", "benchmark", "master_pos_wait", "source_pos_wait", "wait_for_executed_gtid_set",
    "wait_until_sql_thread_after_gtids", "master_gtid_wait", "set", "call", "handler",
];

/// Checks a throttle query: one statement, beginning with SELECT, none of [`REFUSED_WORDS`] outside quotes.
/// Returns the query without a trailing `;`; the error says why and what is accepted.
pub fn check_throttle_query(q: &str) -> Result<String, String> {
    let q = q.trim();
    if let Some(p) = single_statement_problem(q) {
        return Err(format!("throttle-query must be a single read-only SELECT, but it {p}"));
    }
    let q = q.trim_end_matches(';').trim_end().to_string();
    let words = words_outside_quotes(&q);
    if words.first().is_none_or(|w| w != "select") {
        return Err(format!(
            "throttle-query must be a single read-only SELECT (e.g. SELECT COUNT(*) > 100 FROM information_schema.processlist), got `{q}`"
        ));
    }
    if let Some(w) = words.iter().find(|w| REFUSED_WORDS.contains(&w.as_str())) {
        return Err(format!("throttle-query must be a single read-only SELECT; `{w}` is not allowed in it"));
    }
    if q.contains(":=") {
        return Err("throttle-query must be a single read-only SELECT; it may not assign variables (`:=`)".into());
    }
    Ok(q)
}

/// The lower-cased words of `q` outside quotes (quoted text and identifiers are skipped).
fn words_outside_quotes(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in q.chars() {
        if let Some(qc) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && qc != '`' {
                escaped = true;
            } else if c == qc {
                quote = None;
            }
            continue;
        }
        if c.is_alphanumeric() || c == '_' || c == '$' {
            cur.push(c.to_ascii_lowercase());
            continue;
        }
        if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        if matches!(c, '`' | '\'' | '"') {
            quote = Some(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Runs a checked throttle query in a read-only transaction and returns its first column (None: no row, NULL).
/// A query that reached here unchecked is refused again.
pub async fn read_only_first(conn: &mut mysql_async::Conn, q: &str) -> Result<Option<String>, String> {
    let q = check_throttle_query(q)?;
    let mut opts = TxOpts::default();
    opts.with_readonly(Some(true));
    let mut tx = conn.start_transaction(opts).await.map_err(|e| format!("cannot start a read-only transaction: {e}"))?;
    let v = tx.query_first::<Option<String>, _>(q).await.map_err(|e| e.to_string());
    let end = tx.rollback().await.map_err(|e| format!("cannot end the read-only transaction: {e}"));
    let v = v?;
    end?;
    Ok(v.flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_read_only_select_is_accepted() {
        for good in [
            "SELECT 1",
            "select count(*) > 10 from information_schema.processlist;",
            "SELECT IF(@@global.threads_running > 40, 1, 0)",
            "SELECT v FROM app.t WHERE k = 'into; update -- # set'",
        ] {
            check_throttle_query(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
        assert_eq!(check_throttle_query("SELECT 1 ;").as_deref(), Ok("SELECT 1"));
        for bad in [
            "SELECT 1; DROP TABLE x",
            "DELETE FROM app.t",
            "UPDATE app.t SET a = 1",
            "DO SLEEP(1)",
            "SELECT * FROM app.t INTO OUTFILE '/tmp/x'",
            "SELECT a INTO @x FROM app.t",
            "SELECT a FROM app.t FOR UPDATE",
            "SELECT a FROM app.t LOCK IN SHARE MODE",
            "SELECT GET_LOCK('x', 10)",
            "SELECT LOAD_FILE('/etc/shadow')",
            "SELECT @a := 1",
            "SELECT 1 /*! , (SELECT 1) */",
            "SELECT 'unterminated",
            "",
        ] {
            let e = check_throttle_query(bad).expect_err(bad);
            assert!(e.contains("single read-only SELECT"), "{bad:?}: {e}");
        }
    }
}
