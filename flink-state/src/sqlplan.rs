//! Field names for Flink SQL rows. RowData state holds no names (`f0`,
//! `f1`, ...); the job's plan (`EXPLAIN` output) has them. For an interval
//! join the join node's `select=[...]` lists the left input's fields then
//! the right's (Calcite suffixes repeated names with `0`), and the
//! `Exchange(distribution=[hash[...]])` under it names the key.

use crate::json::Json;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct JoinNames {
    pub select: Vec<String>,
    pub key: Vec<String>,
}

/// The names around the first plan node whose name starts with `node`
/// (e.g. "IntervalJoin" for the operator "IntervalJoin[15]"), taken from the
/// last (optimized execution) plan in the text.
pub fn join_names(plan: &str, node: &str) -> Option<JoinNames> {
    let lines: Vec<&str> = plan.lines().collect();
    let i = lines.iter().rposition(|l| {
        l.trim_start_matches([' ', ':', '+', '-'])
            .starts_with(&format!("{node}("))
    })?;
    let select = list_after(lines[i], "select=[")?;
    let key = lines
        .get(i + 1..)
        .unwrap_or(&[])
        .iter()
        .find_map(|l| list_after(l, "hash["))
        .unwrap_or_default();
    Some(JoinNames { select, key })
}

/// The comma-separated names in the last `marker...]` of a line.
fn list_after(line: &str, marker: &str) -> Option<Vec<String>> {
    let start = line.rfind(marker)? + marker.len();
    let rest = line.get(start..)?;
    let end = rest.find(']')?;
    Some(
        rest[..end]
            .split(',')
            .map(|s| s.trim().rsplit(" AS ").next().unwrap_or("").to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

impl JoinNames {
    /// The names of one side's rows: the first `arity` names for the left
    /// input, the rest for the right (Calcite's `0` suffix removed).
    pub fn side(&self, left: bool, arity: usize) -> Vec<String> {
        if left {
            return self.select.iter().take(arity).cloned().collect();
        }
        let left_names: Vec<&String> = self
            .select
            .iter()
            .take(self.select.len().saturating_sub(arity))
            .collect();
        self.select
            .iter()
            .skip(self.select.len().saturating_sub(arity))
            .map(|n| match n.strip_suffix('0') {
                Some(base) if left_names.iter().any(|l| *l == base) => base.to_string(),
                _ => n.clone(),
            })
            .collect()
    }

    /// Renames the `fN` fields of the rows in a dump line: the key's with
    /// the key names, the value's with the side the state belongs to.
    pub fn rename_line(&self, line: &mut Json) {
        let state = match line.get("state") {
            Some(Json::Str(s)) => s.clone(),
            _ => String::new(),
        };
        let left = !state.contains("Right");
        if let Json::Obj(fields) = line {
            for (k, v) in fields.iter_mut() {
                match k.as_str() {
                    "key" => rename_rows(v, &|_| self.key.clone()),
                    "value" => rename_rows(v, &|arity| self.side(left, arity)),
                    _ => {}
                }
            }
        }
    }
}

/// Renames the fields of every row object (`_rowKind` + `fN`) inside `v`.
fn rename_rows(v: &mut Json, names: &dyn Fn(usize) -> Vec<String>) {
    match v {
        Json::Obj(fields) if fields.first().is_some_and(|(k, _)| k == "_rowKind") => {
            let n = names(fields.len() - 1);
            for (i, (k, _)) in fields.iter_mut().skip(1).enumerate() {
                if let Some(name) = n.get(i) {
                    *k = name.clone();
                }
            }
        }
        Json::Obj(fields) => fields.iter_mut().for_each(|(_, v)| rename_rows(v, names)),
        Json::Arr(items) => items.iter_mut().for_each(|v| rename_rows(v, names)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "== Optimized Execution Plan ==
Calc(select=[user_id, imp_id, play_id, ts AS imp_ts, ts0 AS play_ts])
+- IntervalJoin(joinType=[InnerJoin], where=[((user_id = user_id0))], select=[user_id, imp_id, ts, rowtime, user_id0, play_id, ts0, rowtime0])
   :- Exchange(distribution=[hash[user_id]])
   :  +- Calc(select=[user_id, imp_id, ts, rowtime])";

    #[test]
    fn names_both_sides_and_the_key() {
        let n = join_names(PLAN, "IntervalJoin").unwrap();
        assert_eq!(n.key, ["user_id"]);
        assert_eq!(n.side(true, 4), ["user_id", "imp_id", "ts", "rowtime"]);
        assert_eq!(n.side(false, 4), ["user_id", "play_id", "ts", "rowtime"]);
    }
}
