//! Deferred secondary indexes (`--defer-secondary-indexes`, on by default): which indexes of the new structure the
//! ghost is created without, and the statements that drop them from the empty ghost and add them back after the
//! copy. Pure: everything is read from `SHOW CREATE TABLE` text.
//!
//! Only plain non-unique B-tree indexes are deferred. Unique keys stay on the ghost from the start, so the copy's
//! duplicate-key check (a new unique key over duplicates is refused, the values named) and the applier's REPLACE
//! on the shared key work as without deferral. A table with a FULLTEXT or SPATIAL index or a foreign key keeps all
//! its indexes (the server cannot add indexes to it with `LOCK=NONE`, or the constraint needs them), and so does a
//! functional index (MySQL's `((expr))`).

/// One index line of `SHOW CREATE TABLE`: its name and its definition as the server prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDef {
    pub name: String,
    /// E.g. ``KEY `a` (`a`,`b`) COMMENT 'x'`` (without the trailing comma).
    pub definition: String,
}

/// The index lines of a `CREATE TABLE` statement, with what kind each is.
fn index_lines(create: &str) -> impl Iterator<Item = (&str, &str)> {
    create.lines().map(str::trim).filter_map(|line| {
        let line = line.strip_suffix(',').unwrap_or(line);
        let kind = ["PRIMARY KEY", "UNIQUE KEY", "FULLTEXT KEY", "SPATIAL KEY", "VECTOR KEY", "KEY", "CONSTRAINT", "FOREIGN KEY"]
            .into_iter()
            .find(|k| line.starts_with(k))?;
        Some((kind, line))
    })
}

/// The name of an index line (`KEY `a b` (...)` -> `a b`), with doubled backquotes undone.
fn index_name(line: &str) -> Option<String> {
    let start = line.find('`')? + 1;
    let rest = &line[start..];
    let mut name = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            if chars.peek() == Some(&'`') {
                chars.next();
                name.push('`');
                continue;
            }
            return Some(name);
        }
        name.push(c);
    }
    None
}

/// The AUTO_INCREMENT column of `create`, if any (a column line: `` `id` bigint NOT NULL AUTO_INCREMENT``).
fn auto_increment_column(create: &str) -> Option<String> {
    create.lines().map(str::trim).filter(|l| l.starts_with('`') && l.contains(" AUTO_INCREMENT")).find_map(index_name)
}

/// The first column of an index line (`KEY `k` (`a`,`b`)` -> `a`).
fn first_column(line: &str) -> Option<String> {
    let name = index_name(line)?;
    let after_name = line.find(&format!("`{}`", name.replace('`', "``")))? + name.replace('`', "``").len() + 2;
    index_name(&line[after_name..])
}

/// The secondary indexes of `create` (the new structure) that the ghost can be created without and get back
/// later in place; empty when the table has anything that rules deferral out (see the module doc). An index
/// that starts with the AUTO_INCREMENT column is kept: the server requires one (error 1075 without it).
pub fn deferrable(create: &str) -> Vec<IndexDef> {
    let auto_inc = auto_increment_column(create).map(|c| c.to_lowercase());
    let mut out = Vec::new();
    for (kind, line) in index_lines(create) {
        match kind {
            "KEY" if !line.contains("((") => {
                if auto_inc.is_some() && first_column(line).map(|c| c.to_lowercase()) == auto_inc {
                    continue;
                }
                if let Some(name) = index_name(line) {
                    out.push(IndexDef { name, definition: line.to_string() });
                }
            }
            "CONSTRAINT" if !line.contains("FOREIGN KEY") => {}
            "KEY" | "FULLTEXT KEY" | "SPATIAL KEY" | "VECTOR KEY" | "CONSTRAINT" | "FOREIGN KEY" => return Vec::new(),
            _ => {}
        }
    }
    out
}

/// The indexes of `target` (the new structure) that `ghost` (the ghost as it is now) lacks, by name (index names
/// compare without case on both servers).
pub fn missing(target: &str, ghost: &str) -> Vec<IndexDef> {
    let have: Vec<String> = index_lines(ghost).filter_map(|(_, l)| index_name(l)).map(|n| n.to_lowercase()).collect();
    index_lines(target)
        .filter(|(kind, _)| *kind != "PRIMARY KEY")
        .filter_map(|(_, l)| Some(IndexDef { name: index_name(l)?, definition: l.to_string() }))
        .filter(|d| !have.contains(&d.name.to_lowercase()))
        .collect()
}

/// `ALTER TABLE ... DROP INDEX ...` for the empty ghost right after it was created.
pub fn drop_statement(qualified_ghost: &str, defs: &[IndexDef]) -> String {
    let drops: Vec<String> = defs.iter().map(|d| format!("DROP INDEX `{}`", d.name.replace('`', "``"))).collect();
    format!("ALTER TABLE {qualified_ghost} {}", drops.join(", "))
}

/// `ALTER TABLE ... ADD ...` for all of `defs` in one statement (one scan of the ghost), in place without a lock
/// when `online`; else the server's choice (a fallback when it cannot do it in place).
pub fn add_statement(qualified_ghost: &str, defs: &[IndexDef], online: bool) -> String {
    let adds: Vec<String> = defs.iter().map(|d| format!("ADD {}", d.definition)).collect();
    let tail = if online { ", ALGORITHM=INPLACE, LOCK=NONE" } else { "" };
    format!("ALTER TABLE {qualified_ghost} {}{tail}", adds.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MYSQL: &str = "CREATE TABLE `t` (\n  `id` bigint NOT NULL AUTO_INCREMENT,\n  `a` int DEFAULT NULL,\n  `b` varchar(64) DEFAULT NULL,\n  `f` int DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `ub` (`b`),\n  KEY `a` (`a`),\n  KEY `x``y` (`a`,`b`) COMMENT 'two'\n) ENGINE=InnoDB AUTO_INCREMENT=3 DEFAULT CHARSET=utf8mb4";

    #[test]
    fn plain_secondary_indexes_are_deferred_and_unique_ones_are_kept() {
        let d = deferrable(MYSQL);
        assert_eq!(d.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["a", "x`y"]);
        assert_eq!(d[1].definition, "KEY `x``y` (`a`,`b`) COMMENT 'two'");
        assert_eq!(drop_statement("`d`.`_t_gho`", &d), "ALTER TABLE `d`.`_t_gho` DROP INDEX `a`, DROP INDEX `x``y`");
        assert_eq!(
            add_statement("`d`.`_t_gho`", &d, true),
            "ALTER TABLE `d`.`_t_gho` ADD KEY `a` (`a`), ADD KEY `x``y` (`a`,`b`) COMMENT 'two', ALGORITHM=INPLACE, LOCK=NONE"
        );
    }

    #[test]
    fn fulltext_spatial_foreign_and_functional_indexes_rule_deferral_out() {
        for extra in [
            "FULLTEXT KEY `ft` (`b`)",
            "SPATIAL KEY `sp` (`g`)",
            "CONSTRAINT `fk` FOREIGN KEY (`a`) REFERENCES `p` (`id`)",
            "KEY `fn` ((lower(`b`)))",
        ] {
            let create = MYSQL.replace("  KEY `a` (`a`),", &format!("  KEY `a` (`a`),\n  {extra},"));
            assert!(deferrable(&create).is_empty(), "{extra}");
        }
    }

    #[test]
    fn an_index_the_auto_increment_column_needs_is_kept() {
        let create = "CREATE TABLE `t` (\n  `a` int NOT NULL,\n  `id` bigint NOT NULL AUTO_INCREMENT,\n  `b` int DEFAULT NULL,\n  PRIMARY KEY (`a`,`id`),\n  KEY `id` (`id`),\n  KEY `kb` (`b`,`id`)\n) ENGINE=InnoDB";
        assert_eq!(deferrable(create).iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["kb"]);
        assert_eq!(first_column("KEY `x``y` (`a`,`b`)"), Some("a".into()));
    }

    #[test]
    fn a_check_constraint_does_not_rule_deferral_out() {
        let create = MYSQL.replace("  KEY `a` (`a`),", "  KEY `a` (`a`),\n  CONSTRAINT `c` CHECK ((`a` > 0)),");
        assert_eq!(deferrable(&create).len(), 2);
    }

    #[test]
    fn a_table_with_only_a_primary_key_defers_nothing() {
        assert!(deferrable("CREATE TABLE `t` (\n  `id` int NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB").is_empty());
    }

    #[test]
    fn missing_indexes_are_found_by_name_without_case() {
        let ghost = MYSQL.replace("  KEY `a` (`a`),\n", "").replace("KEY `x``y`", "KEY `X``Y`");
        let m = missing(MYSQL, &ghost);
        assert_eq!(m, vec![IndexDef { name: "a".into(), definition: "KEY `a` (`a`)".into() }]);
        assert!(missing(MYSQL, MYSQL).is_empty());
    }
}
