//! `bases` on SQLite: campaigns, their creation (with their numbers table) and their state.
//!
//! SQLite's DDL is transactional: creating or adopting the numbers table and recording the campaign
//! happen in one `BEGIN IMMEDIATE` transaction, so a failure leaves nothing behind.
//!
//! Two SQLite rules shape this file: table names are case-insensitive (so `bases.tabla` is unique
//! `COLLATE NOCASE`: `Prueba` and `PRUEBA` cannot be two tables), and index names share one
//! namespace with tables (so a numbers table's indexes are named `<tabla>#<what>`, which no valid
//! campaign name can be).

use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use diesel::sqlite::{Sqlite, SqliteConnection};

use super::SqliteStore;
use crate::domain::{CampaignName, CampaignState, TableName};
use crate::store::rows::{now_ms, to_naive, BaseRow, BaseValues, Count};
use crate::store::schema::bases;
use crate::store::{
    campaign_exists, campaign_missing, check_blank_phones, patched, sql, warn_numbers_table,
    Campaign, CampaignPatch, StoreError,
};

/// The columns discador needs in a numbers table besides `id` and `telefono`. All nullable or
/// defaulted, so an adopted table gets the missing ones and its rows become PENDIENTE.
const NUMBER_COLUMNS: [(&str, &str); 12] = [
    ("estado", "TEXT NOT NULL DEFAULT 'PENDIENTE'"),
    ("intentos", "INTEGER NOT NULL DEFAULT 0"),
    ("proximo_intento", "TEXT NULL"),
    ("ultimo_intento", "TEXT NULL"),
    ("resultado", "TEXT NULL"),
    ("causa", "TEXT NULL"),
    ("uuid", "TEXT NULL"),
    ("duracion", "INTEGER NOT NULL DEFAULT 0"),
    ("datos", "TEXT NULL"),
    ("disposicion", "TEXT NULL"),
    ("zona_horaria", "TEXT NULL"),
    ("espera", "TEXT NULL"),
];

/// The columns later versions added (migrations `guion`, `reglas`), added to older tables.
const LATE_COLUMNS: [&str; 3] = ["disposicion", "zona_horaria", "espera"];

fn create_table_sql(t: &TableName) -> String {
    let columns: Vec<String> = NUMBER_COLUMNS
        .iter()
        .map(|(name, def)| format!("{name} {def}"))
        .collect();
    format!(
        "CREATE TABLE {} (id INTEGER PRIMARY KEY, telefono TEXT NOT NULL, {})",
        t.quoted(),
        columns.join(", ")
    )
}

/// The indexes of a numbers table (the same four as on MySQL), created if missing.
fn create_indexes(conn: &mut SqliteConnection, t: &TableName) -> Result<(), StoreError> {
    let name = t.as_str();
    let q = t.quoted();
    diesel::sql_query(format!(
        "CREATE UNIQUE INDEX IF NOT EXISTS `{name}#telefono` ON {q} (telefono)"
    ))
    .execute(conn)
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict(_) => {
            StoreError::Invalid(format!("la tabla {t} tiene teléfonos repetidos"))
        }
        other => other,
    })?;
    diesel::sql_query(format!(
        "CREATE INDEX IF NOT EXISTS `{name}#due` ON {q} (estado, proximo_intento, id)"
    ))
    .execute(conn)?;
    diesel::sql_query(format!(
        "CREATE INDEX IF NOT EXISTS `{name}#uuid` ON {q} (uuid)"
    ))
    .execute(conn)?;
    diesel::sql_query(format!(
        "CREATE INDEX IF NOT EXISTS `{name}#zona` ON {q} (estado, zona_horaria)"
    ))
    .execute(conn)?;
    Ok(())
}

/// Whether a table of this name exists, in any letter case (SQLite's own rule for table names).
fn table_exists(conn: &mut SqliteConnection, t: &TableName) -> Result<bool, StoreError> {
    let c: Count = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE",
    )
    .bind::<Text, _>(t.as_str())
    .get_result(conn)?;
    Ok(c.n > 0)
}

#[derive(QueryableByName)]
struct ColumnInfo {
    #[diesel(sql_type = Text)]
    nombre: String,
    #[diesel(sql_type = Text)]
    tipo: String,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

fn columns(conn: &mut SqliteConnection, t: &TableName) -> Result<Vec<ColumnInfo>, StoreError> {
    Ok(
        diesel::sql_query("SELECT name AS nombre, type AS tipo, pk FROM pragma_table_info(?)")
            .bind::<Text, _>(t.as_str())
            .load(conn)?,
    )
}

/// Adds the [`LATE_COLUMNS`] (and the zone index) to the numbers tables of campaigns created
/// before them, right after the migrations ran. A campaign whose table is missing (dropped by hand) is
/// logged and skipped: the service starts all the same.
pub(super) fn add_disposition_columns(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let tablas: Vec<String> = bases::table.select(bases::tabla).load(conn)?;
    for raw in tablas {
        let t = match TableName::parse(&raw) {
            Ok(t) => t,
            Err(e) => {
                warn_numbers_table(&raw, &e.to_string());
                continue;
            }
        };
        let cols = columns(conn, &t)?;
        if cols.is_empty() {
            warn_numbers_table(&raw, "la tabla no existe");
            continue;
        }
        let missing: Vec<&str> = LATE_COLUMNS
            .into_iter()
            .filter(|name| !cols.iter().any(|c| c.nombre.eq_ignore_ascii_case(name)))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let added = missing
            .iter()
            .try_for_each(|name| {
                diesel::sql_query(format!(
                    "ALTER TABLE {} ADD COLUMN {name} TEXT NULL",
                    t.quoted()
                ))
                .execute(conn)
                .map(drop)
            })
            .map_err(StoreError::from)
            .and_then(|()| create_indexes(conn, &t));
        match added {
            Ok(()) => tracing::info!(tabla = %t, columnas = ?missing, "columnas agregadas"),
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => warn_numbers_table(&raw, &e.to_string()),
        }
    }
    Ok(())
}

/// Checks that an existing table can hold numbers and adds what it lacks.
fn adopt_table(conn: &mut SqliteConnection, t: &TableName) -> Result<(), StoreError> {
    let cols = columns(conn, t)?;
    let find = |name: &str| cols.iter().find(|c| c.nombre.eq_ignore_ascii_case(name));
    let id = find("id")
        .ok_or_else(|| StoreError::Invalid(format!("la tabla {t} no tiene columna 'id'")))?;
    // Only a sole `INTEGER PRIMARY KEY` is the rowid: numbered by SQLite, never NULL.
    let sole_pk = cols.iter().filter(|c| c.pk > 0).count() == 1;
    if id.pk != 1 || !sole_pk || !id.tipo.eq_ignore_ascii_case("INTEGER") {
        return Err(StoreError::Invalid(format!(
            "la columna 'id' de la tabla {t} debe ser INTEGER PRIMARY KEY"
        )));
    }
    if find("telefono").is_none() {
        return Err(StoreError::Invalid(format!(
            "la tabla {t} no tiene columna 'telefono'"
        )));
    }
    let blank: Count = sql::blank_phones::<Sqlite>(t).get_result(conn)?;
    check_blank_phones(t, blank.n)?;
    for (name, def) in NUMBER_COLUMNS {
        if find(name).is_none() {
            diesel::sql_query(format!(
                "ALTER TABLE {} ADD COLUMN {name} {def}",
                t.quoted()
            ))
            .execute(conn)?;
        }
    }
    create_indexes(conn, t)
}

fn load(conn: &mut SqliteConnection, n: &CampaignName) -> Result<Option<Campaign>, StoreError> {
    let row: Option<BaseRow> = bases::table
        .filter(bases::nombre.eq(n.as_str()))
        .select(BaseRow::as_select())
        .first(conn)
        .optional()?;
    row.map(Campaign::try_from).transpose()
}

/// A campaign that must exist (inside a write transaction: nobody changes it meanwhile).
fn existing(conn: &mut SqliteConnection, n: &CampaignName) -> Result<Campaign, StoreError> {
    load(conn, n)?.ok_or_else(|| campaign_missing(n))
}

fn save(conn: &mut SqliteConnection, c: &Campaign) -> Result<(), StoreError> {
    diesel::update(bases::table.filter(bases::nombre.eq(c.nombre.as_str())))
        .set(BaseValues::of(c))
        .execute(conn)?;
    Ok(())
}

impl SqliteStore {
    /// Records `c` with its numbers table `c.tabla`: created, or adopted if it exists and `adopt`.
    pub(in crate::store) async fn create_campaign(
        &self,
        c: &Campaign,
        adopt: bool,
    ) -> Result<(), StoreError> {
        let c = c.clone();
        self.write(move |conn| {
            conn.immediate_transaction(|conn| {
                if load(conn, &c.nombre)?.is_some() {
                    return Err(campaign_exists(&c.nombre));
                }
                let tabla = &c.tabla;
                // `tabla` is unique COLLATE NOCASE: this finds `PRUEBA` for `Prueba` too.
                let taken: i64 = bases::table
                    .filter(bases::tabla.eq(tabla.as_str()))
                    .count()
                    .get_result(conn)?;
                if taken > 0 {
                    return Err(StoreError::Conflict(format!(
                        "la tabla {tabla} ya pertenece a otra campaña (en SQLite los nombres de \
                         tabla no distinguen mayúsculas)"
                    )));
                }
                match (table_exists(conn, tabla)?, adopt) {
                    (true, true) => adopt_table(conn, tabla)?,
                    (true, false) => {
                        return Err(StoreError::Conflict(format!(
                            "ya existe una tabla {tabla}; indique \"tabla\" para adoptarla"
                        )))
                    }
                    (false, _) => {
                        diesel::sql_query(create_table_sql(tabla)).execute(conn)?;
                        create_indexes(conn, tabla)?;
                    }
                }
                diesel::insert_into(bases::table)
                    .values(BaseValues::of(&c))
                    .execute(conn)
                    .map_err(|e| match StoreError::from(e) {
                        StoreError::Conflict(_) => campaign_exists(&c.nombre),
                        other => other,
                    })?;
                Ok(())
            })
        })
        .await
    }

    /// Writes every field of an existing campaign as given.
    pub(in crate::store) async fn put_campaign(&self, c: &Campaign) -> Result<(), StoreError> {
        let c = c.clone();
        self.write(move |conn| save(conn, &c)).await
    }

    pub(in crate::store) async fn campaign(
        &self,
        n: &CampaignName,
    ) -> Result<Option<Campaign>, StoreError> {
        let n = n.clone();
        self.run(move |conn| load(conn, &n)).await
    }

    pub(in crate::store) async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        let rows: Vec<BaseRow> = self
            .run(|conn| {
                Ok(bases::table
                    .order(bases::nombre.asc())
                    .select(BaseRow::as_select())
                    .load(conn)?)
            })
            .await?;
        rows.into_iter().map(Campaign::try_from).collect()
    }

    pub(in crate::store) async fn update_campaign(
        &self,
        n: &CampaignName,
        p: &CampaignPatch,
    ) -> Result<Campaign, StoreError> {
        let (n, p) = (n.clone(), p.clone());
        self.write(move |conn| {
            conn.immediate_transaction(|conn| {
                let mut c = existing(conn, &n)?;
                patched(&mut c, &p)?;
                c.actualizada = now_ms();
                save(conn, &c)?;
                Ok(c)
            })
        })
        .await
    }

    pub(in crate::store) async fn set_campaign_state(
        &self,
        n: &CampaignName,
        s: CampaignState,
    ) -> Result<(), StoreError> {
        let n = n.clone();
        self.write(move |conn| {
            let changed = diesel::update(bases::table.filter(bases::nombre.eq(n.as_str())))
                .set((
                    bases::estado.eq(s.as_str()),
                    bases::actualizada.eq(to_naive(now_ms())),
                ))
                .execute(conn)?;
            if changed == 0 {
                return Err(campaign_missing(&n));
            }
            Ok(())
        })
        .await
    }

    pub(in crate::store) async fn transition_campaign_state(
        &self,
        n: &CampaignName,
        from: &[CampaignState],
        to: CampaignState,
        motivo: Option<&str>,
    ) -> Result<Campaign, StoreError> {
        let n = n.clone();
        let from = from.to_vec();
        let motivo = motivo.map(str::to_owned);
        self.write(move |conn| {
            conn.immediate_transaction(|conn| {
                let mut c = existing(conn, &n)?;
                if !from.contains(&c.estado) {
                    return Err(StoreError::Conflict(format!(
                        "la campaña {n} está {} y no puede pasar a {to}",
                        c.estado
                    )));
                }
                c.estado = to;
                c.actualizada = now_ms();
                c.motivo = motivo;
                save(conn, &c)?;
                Ok(c)
            })
        })
        .await
    }
}
