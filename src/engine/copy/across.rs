//! A chunk across servers (move-tables): read on the source under shared locks, written to the target with its
//! watermark in one target transaction, and only then are the source's locks released (Ghostferry's order). MySQL
//! JSON values travel with a report of the leaves their text cannot carry (`json_leaves`).

use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;
use mysql_async::{TxOpts, Value};

use crate::engine::checkpoint;
use crate::engine::copy::copier::{ChunkBounds, CopyJob, Locate};
use crate::engine::copy::json_leaves;
use crate::engine::sql::{qualified, quote_ident};

impl CopyJob {
    /// One chunk across servers (Ghostferry's order): the chunk's rows are read on the source under shared locks
    /// in a source transaction, written with INSERT IGNORE together with the watermark in one target transaction,
    /// the target commits, and only then the source transaction ends. A write to one of those rows on the source
    /// waits for the locks, so it reaches the binary log (and the applier) after the copied row is on the target:
    /// without that, a row deleted between the read and the write would come back on the target.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn copy_chunk_across(
        &self,
        source: &mut mysql_async::Conn,
        target: &mut mysql_async::Conn,
        hold: Duration,
        lower: Option<&[Value]>,
        range_end: &[Value],
        size: u64,
        target_cols: &[String],
        source_cols: &[String],
        update_sql: &str,
    ) -> Result<(Vec<Value>, bool, u64, Instant)> {
        let ChunkBounds { end, last, cond, params, end_text, span } = self.bounds(source, lower, range_end, size).await?;
        let select = self.locking_read(source_cols, &cond);
        let started = Instant::now();
        let mut stx = source.start_transaction(TxOpts::default()).await.wrap_err("starting the source side of a chunk")?;
        let rows: Vec<mysql_async::Row> = stx.exec(&select, params.clone()).await.wrap_err_with(|| {
            format!("reading a chunk of {}.{} up to {}", self.source_db, self.source_table, checkpoint::describe_key(&end))
        })?;
        if !hold.is_zero() {
            // Test aid: widens the window between the read and the write, in which writers must wait.
            tokio::time::sleep(hold).await;
        }
        let mut ttx = target.start_transaction(TxOpts::default()).await.wrap_err("starting the target side of a chunk")?;
        let written = self.write_across(&mut ttx, &rows, target_cols, &end).await?;
        self.commit_chunk(ttx, update_sql, &end_text, written, last, &span).await.wrap_err("committing a chunk on the target")?;
        // Only now may writers touch the rows read: their changes reach the binary log after the copy landed.
        stx.rollback().await.wrap_err("releasing the chunk's locks on the source")?;
        Ok((end, last, written, started))
    }

    /// The verification's repair across servers: the source's rows of a key range read under shared locks, the
    /// target's rows of that range deleted and the source's written in one target transaction, which commits
    /// before the source's locks are released (a chunk's order, above). `noop` (a test aid) rolls the target's
    /// transaction back, so the difference stays. Returns the rows written. The range's rows are held in memory:
    /// a verification chunk (at most 100,000 rows).
    pub async fn repair_across(&self, source_opts: &mysql_async::Opts, target_opts: &mysql_async::Opts, source_range: (&str, Vec<Value>), target_range: (&str, Vec<Value>), noop: bool) -> Result<u64> {
        let mut source = super::session::copier_conn(source_opts, self.writes).await?;
        let mut target = super::session::copier_conn(target_opts, self.writes).await.wrap_err("connecting to the target server")?;
        let target_cols: Vec<String> = self.columns.iter().map(|(_, n)| quote_ident(n)).collect();
        let source_cols: Vec<String> = self.columns.iter().map(|(c, _)| quote_ident(&c.name)).collect();
        let select = self.locking_read(&source_cols, source_range.0);
        let mut stx = source.start_transaction(TxOpts::default()).await.wrap_err("starting the source side of a repair")?;
        let rows: Vec<mysql_async::Row> = stx.exec(&select, source_range.1).await.wrap_err("reading a repaired range on the source")?;
        let mut ttx = target.start_transaction(TxOpts::default()).await.wrap_err("starting the target side of a repair")?;
        ttx.exec_drop(format!("DELETE FROM {} WHERE {}", qualified(&self.target_db, &self.target_table), target_range.0), target_range.1)
            .await
            .wrap_err("emptying the target's range")?;
        let written = self.write_across(&mut ttx, &rows, &target_cols, &[]).await?;
        if noop {
            ttx.rollback().await.wrap_err("rolling a repair back")?;
        } else {
            ttx.commit().await.wrap_err("committing a repair on the target")?;
        }
        stx.rollback().await.wrap_err("releasing the repair's locks on the source")?;
        let _ = source.disconnect().await;
        let _ = target.disconnect().await;
        Ok(if noop { 0 } else { written })
    }

    /// The source's read of a range under shared locks: the columns, then a report per MySQL JSON column of the
    /// leaves its text cannot carry (see json_leaves).
    fn locking_read(&self, source_cols: &[String], cond: &str) -> String {
        let reports: Vec<String> = self
            .json_columns()
            .map(|i| json_leaves::report_sql(&format!("{}.{}", qualified(&self.source_db, &self.source_table), quote_ident(&self.columns[i].0.name))))
            .collect();
        let selected: Vec<&str> = source_cols.iter().chain(&reports).map(String::as_str).collect();
        format!("SELECT {} FROM {} WHERE {cond} LOCK IN SHARE MODE", selected.join(", "), self.source())
    }

    /// The positions (in `columns`) of MySQL JSON columns, whose reports follow the columns in a cross-server read.
    fn json_columns(&self) -> impl Iterator<Item = usize> + '_ {
        self.columns.iter().enumerate().filter(|(_, (c, _))| c.is_json()).map(|(i, _)| i)
    }

    /// Writes rows read on the source (the columns, then the JSON reports) with INSERT IGNORE in the target's
    /// transaction, in statements of at most 1000 rows and 60000 parameters (the protocol allows 65535); returns the
    /// rows written.
    async fn write_across(&self, ttx: &mut mysql_async::Transaction<'_>, rows: &[mysql_async::Row], target_cols: &[String], end: &[Value]) -> Result<u64> {
        let json: Vec<usize> = self.json_columns().collect();
        let placeholders: Vec<String> = self.columns.iter().map(|(c, _)| c.placeholder()).collect();
        let mut written = 0u64;
        let mut start = 0;
        while start < rows.len() {
            let (mut tuples, mut values) = (Vec::new(), Vec::new());
            let mut next = start;
            while next < rows.len() && tuples.len() < 1000 {
                let (sql, params) = self.row_across(&rows[next], &json, &placeholders)?;
                if !tuples.is_empty() && values.len() + params.len() > 60_000 {
                    break;
                }
                tuples.push(sql);
                values.extend(params);
                next += 1;
            }
            let insert = format!(
                "INSERT IGNORE INTO {} ({}) VALUES {}",
                qualified(&self.target_db, &self.target_table),
                target_cols.join(", "),
                tuples.join(", ")
            );
            ttx.exec_drop(&insert, values).await.wrap_err_with(|| {
                format!("writing a chunk of {}.{} to {}.{}", self.source_db, self.source_table, self.target_db, self.target_table)
            })?;
            written += ttx.affected_rows();
            let count = ttx.get_warnings();
            if count > 0 {
                self.check_warnings(ttx, count, Locate::Rows(&rows[start..next]), end).await?;
            }
            start = next;
        }
        Ok(written)
    }

    /// One row's `(...)` of a cross-server INSERT and its parameters: TIME as text (see `time_as_text`), a MySQL
    /// JSON value with reported leaves as the SQL that rebuilds it.
    fn row_across(&self, row: &mysql_async::Row, json: &[usize], placeholders: &[String]) -> Result<(String, Vec<Value>)> {
        let mut parts = Vec::with_capacity(placeholders.len());
        let mut params = Vec::with_capacity(placeholders.len());
        for (i, placeholder) in placeholders.iter().enumerate() {
            let value = row.as_ref(i).cloned().map(crate::engine::apply::values::time_as_text).unwrap_or(Value::NULL);
            let rebuilt = match json.iter().position(|&j| j == i) {
                Some(k) if value != Value::NULL => json_leaves::rebuild(&self.columns[i].0.name, &value, row.as_ref(placeholders.len() + k))?,
                _ => None,
            };
            match rebuilt {
                Some(sql) => {
                    parts.push(sql.sql);
                    params.extend(sql.params);
                }
                None => {
                    parts.push(placeholder.clone());
                    params.push(value);
                }
            }
        }
        Ok((format!("({})", parts.join(", ")), params))
    }
}
