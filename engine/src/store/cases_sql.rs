// The SQL of finding cases, of the settings and of the personal-data trail, written once;
// included by `cases.rs` per driver (`DB`, `IN_JSON`, `QUEUE_ROLE`, `PREFIX_CHECK`, `PLANNER`).

use super::{CaseQuery, PersonalDataReadRow};
use crate::search::CaseScope;
use crate::store::sqlite::{by_name, instance_fields};
use crate::store::{Arg, InstanceRow, SearchRow};
use sqlx::Row;

type Pool = sqlx::Pool<DB>;
type R<T> = Result<T, sqlx::Error>;

/// A statement put together with its values: each value added gives its placeholder.
#[derive(Default)]
struct Statement {
    sql: String,
    args: Vec<Arg<'static>>,
}

impl Statement {
    fn value(&mut self, arg: Arg<'static>) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    fn text(&mut self, text: &str) -> String {
        self.value(Arg::Text(text.to_string().into()))
    }

    fn int(&mut self, i: i64) -> String {
        self.value(Arg::Int(i))
    }

    /// `IN (…)` of a JSON array of `items`.
    fn in_list(&mut self, items: &[String]) -> String {
        let json = crate::store::json_list(items);
        let p = self.text(&json);
        format!("{}{p}{}", IN_JSON[0], IN_JSON[1])
    }

    fn query(&self) -> sqlx::query::Query<'_, DB, <DB as sqlx::Database>::Arguments> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql.as_str()));
        for arg in &self.args {
            query = match arg {
                Arg::Text(s) => query.bind(s.as_ref()),
                Arg::Int(i) => query.bind(*i),
            };
        }
        query
    }
}

/// ` WHERE …` of a search: each filter given, and the caller's scope.
fn case_filters(q: &CaseQuery, st: &mut Statement) -> String {
    let mut conds: Vec<String> = Vec::new();
    if let Some(process) = &q.process {
        conds.push(format!("i.process_key = {}", st.text(process)));
    }
    if let Some(status) = &q.status {
        conds.push(format!("i.status = {}", st.text(status)));
    }
    if let Some(from) = q.from {
        conds.push(format!("i.created_at >= {}", st.int(from)));
    }
    if let Some(to) = q.to {
        conds.push(format!("i.created_at < {}", st.int(to)));
    }
    if let Some(text) = &q.text {
        // Each way through an index of its own: the business keys of the deployed processes
        // (`instances_business_key`), the hashes (`case_search_hash`); the names are a scan
        // of the short rows of the search table.
        let processes = match &q.process {
            Some(process) => format!("process_key = {}", st.text(process)),
            None => "process_key IN (SELECT DISTINCT key FROM deployments)".to_string(),
        };
        let low = st.text(&text.key);
        let high = st.text(&format!("{}\u{10FFFF}", text.key));
        let mut prefix = format!("business_key >= {low} AND business_key < {high}");
        if PREFIX_CHECK {
            prefix.push_str(&format!(" AND starts_with(business_key, {low})"));
        }
        let hash = st.text(&text.id_hash);
        let name = st.text(&format!("%{}%", super::like_literal(&text.name)));
        conds.push(format!(
            "i.id IN (SELECT id FROM instances WHERE {processes} AND {prefix} \
             UNION SELECT instance_id FROM case_search WHERE value_hash = {hash} \
             UNION SELECT instance_id FROM case_search WHERE kind = 'name' \
             AND value LIKE {name} ESCAPE '\\')"
        ));
    }
    if let Some(unit) = &q.unit {
        conds.push(format!(
            "EXISTS (SELECT 1 FROM tasks t WHERE t.instance_id = i.id AND t.org_unit = {})",
            st.text(unit)
        ));
    }
    match &q.scope {
        CaseScope::All => {}
        CaseScope::Units(units) => conds.push(format!(
            "EXISTS (SELECT 1 FROM tasks t WHERE t.instance_id = i.id AND t.org_unit {})",
            st.in_list(units)
        )),
        CaseScope::Queues { roles, units } => {
            let roles = st.in_list(roles);
            let units = match units {
                Some(units) => format!(" AND t.org_unit {}", st.in_list(units)),
                None => String::new(),
            };
            conds.push(format!(
                "EXISTS (SELECT 1 FROM tasks t WHERE t.instance_id = i.id \
                 AND (t.queue {roles} OR {QUEUE_ROLE} {roles}){units})"
            ));
        }
    }
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}

/// A page of the cases `q` finds, newest first, and how many it finds in all: both read in one
/// transaction, so that they agree.
pub async fn search_cases(pool: &Pool, q: &CaseQuery) -> R<(Vec<InstanceRow>, i64)> {
    let mut tx = pool.begin().await?;
    if !PLANNER.is_empty() {
        sqlx::raw_sql(PLANNER).execute(&mut *tx).await?;
    }
    let mut count = Statement::default();
    let filters = case_filters(q, &mut count);
    count.sql = format!("SELECT COUNT(*) AS n FROM instances i{filters}");
    let total: i64 = count.query().fetch_one(&mut *tx).await?.try_get("n")?;
    if total == 0 || q.offset >= total {
        tx.commit().await?;
        return Ok((Vec::new(), total));
    }
    let mut page = Statement::default();
    let filters = case_filters(q, &mut page);
    let (limit, offset) = (page.int(q.limit), page.int(q.offset));
    page.sql = format!(
        "SELECT i.* FROM instances i{filters} ORDER BY i.created_at DESC, i.id DESC \
         LIMIT {limit} OFFSET {offset}"
    );
    let rows = page
        .query()
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| Ok(instance_fields!(r)))
        .collect::<R<Vec<_>>>()?;
    tx.commit().await?;
    Ok((rows, total))
}

/// The rows of the search table of one case (what it is found by), by variable.
pub async fn search_rows(pool: &Pool, instance: &str) -> R<Vec<SearchRow>> {
    sqlx::query("SELECT * FROM case_search WHERE instance_id = $1 ORDER BY var")
        .bind(instance)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(SearchRow {
                instance_id: r.try_get("instance_id")?,
                var: r.try_get("var")?,
                kind: r.try_get("kind")?,
                value: r.try_get("value")?,
                value_hash: r.try_get("value_hash")?,
            })
        })
        .collect()
}

// ---- settings ----

/// The setting `name`, written as `value` first if there is none (several servers opening
/// one database at once all read the one written first).
pub async fn setting_or_insert(pool: &Pool, name: &str, value: &str) -> R<String> {
    sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(value)
        .execute(pool)
        .await?;
    sqlx::query("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await?
        .try_get("value")
}

pub async fn setting(pool: &Pool, name: &str) -> R<Option<String>> {
    sqlx::query("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await?
        .map(|r| r.try_get("value"))
        .transpose()
}

pub async fn set_setting(pool: &Pool, name: &str, value: &str) -> R<()> {
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(value)
    .execute(pool)
    .await?;
    Ok(())
}

// ---- the trail of personal data read unmasked ----

pub async fn record_personal_data_read(pool: &Pool, r: &PersonalDataReadRow) -> R<()> {
    sqlx::query(
        "INSERT INTO personal_data_reads \
         (id, at, instance_id, principal_kind, principal_id, principal, address) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&r.id)
    .bind(r.at)
    .bind(&r.instance_id)
    .bind(&r.principal_kind)
    .bind(&r.principal_id)
    .bind(&r.principal)
    .bind(&r.address)
    .execute(pool)
    .await?;
    Ok(())
}

/// A page of the recorded reads (of one case, or of all), newest first, and how many in all.
pub async fn personal_data_reads(
    pool: &Pool,
    instance: Option<&str>,
    limit: i64,
    offset: i64,
) -> R<(Vec<PersonalDataReadRow>, i64)> {
    let mut count = Statement::default();
    let mut page = Statement::default();
    let filter = |st: &mut Statement| match instance {
        Some(id) => format!(" WHERE instance_id = {}", st.text(id)),
        None => String::new(),
    };
    let where_count = filter(&mut count);
    count.sql = format!("SELECT COUNT(*) AS n FROM personal_data_reads{where_count}");
    let total: i64 = count.query().fetch_one(pool).await?.try_get("n")?;
    let where_page = filter(&mut page);
    let (limit, offset) = (page.int(limit), page.int(offset));
    page.sql = format!(
        "SELECT * FROM personal_data_reads{where_page} ORDER BY at DESC, id DESC \
         LIMIT {limit} OFFSET {offset}"
    );
    let rows = page
        .query()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(PersonalDataReadRow {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                instance_id: r.try_get("instance_id")?,
                principal_kind: r.try_get("principal_kind")?,
                principal_id: r.try_get("principal_id")?,
                principal: r.try_get("principal")?,
                address: r.try_get("address")?,
            })
        })
        .collect::<R<Vec<_>>>()?;
    Ok((rows, total))
}
