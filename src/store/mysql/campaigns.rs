//! `bases` on MySQL: campaigns, their creation (with their numbers table) and their state.

use diesel::mysql::Mysql;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

use super::MysqlStore;
use crate::domain::{CampaignName, CampaignState, TableName};
use crate::store::rows::{now_ms, to_naive, BaseRow, BaseValues, Count};
use crate::store::schema::bases;
use crate::store::{
    already_exists, campaign_exists, campaign_missing, check_blank_phones, patched, sql,
    warn_numbers_table, Campaign, CampaignPatch, StoreError,
};

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    nombre: String,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    nombre: String,
    #[diesel(sql_type = Text)]
    extra: String,
}

/// Columns a numbers table must have; an adopted table gets the missing ones (all nullable or
/// defaulted, so existing rows stay valid and become PENDIENTE).
const NUMBER_COLUMNS: &str = "\
    ADD COLUMN IF NOT EXISTS estado VARCHAR(12) NOT NULL DEFAULT 'PENDIENTE', \
    ADD COLUMN IF NOT EXISTS intentos INT NOT NULL DEFAULT 0, \
    ADD COLUMN IF NOT EXISTS proximo_intento DATETIME(3) NULL, \
    ADD COLUMN IF NOT EXISTS ultimo_intento DATETIME(3) NULL, \
    ADD COLUMN IF NOT EXISTS resultado VARCHAR(20) NULL, \
    ADD COLUMN IF NOT EXISTS causa VARCHAR(64) NULL, \
    ADD COLUMN IF NOT EXISTS uuid CHAR(36) NULL, \
    ADD COLUMN IF NOT EXISTS duracion INT NOT NULL DEFAULT 0, \
    ADD COLUMN IF NOT EXISTS datos LONGTEXT NULL, \
    ADD COLUMN IF NOT EXISTS disposicion VARCHAR(24) NULL, \
    ADD COLUMN IF NOT EXISTS zona_horaria VARCHAR(64) NULL, \
    ADD COLUMN IF NOT EXISTS espera VARCHAR(16) NULL, \
    ADD UNIQUE INDEX IF NOT EXISTS uq_telefono (telefono), \
    ADD INDEX IF NOT EXISTS idx_zona (estado, zona_horaria), \
    ADD INDEX IF NOT EXISTS idx_due (estado, proximo_intento, id), \
    ADD INDEX IF NOT EXISTS idx_uuid (uuid)";

fn create_table_sql(t: &TableName) -> String {
    format!(
        "CREATE TABLE {} (\
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
            telefono VARCHAR(32) NOT NULL, \
            estado VARCHAR(12) NOT NULL DEFAULT 'PENDIENTE', \
            intentos INT NOT NULL DEFAULT 0, \
            proximo_intento DATETIME(3) NULL, \
            ultimo_intento DATETIME(3) NULL, \
            resultado VARCHAR(20) NULL, \
            causa VARCHAR(64) NULL, \
            uuid CHAR(36) NULL, \
            duracion INT NOT NULL DEFAULT 0, \
            datos LONGTEXT NULL, \
            disposicion VARCHAR(24) NULL, \
            zona_horaria VARCHAR(64) NULL, \
            espera VARCHAR(16) NULL, \
            UNIQUE KEY uq_telefono (telefono), \
            KEY idx_zona (estado, zona_horaria), \
            KEY idx_due (estado, proximo_intento, id), \
            KEY idx_uuid (uuid)\
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        t.quoted()
    )
}

async fn table_exists(conn: &mut AsyncMysqlConnection, t: &TableName) -> Result<bool, StoreError> {
    // BINARY: information_schema compares case-insensitively, MySQL table names on Linux do not.
    let c: Count = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND BINARY TABLE_NAME = ?",
    )
    .bind::<Text, _>(t.as_str())
    .get_result(conn)
    .await?;
    Ok(c.n > 0)
}

/// Checks that an existing table can hold numbers and adds what it lacks.
async fn adopt_table(conn: &mut AsyncMysqlConnection, t: &TableName) -> Result<(), StoreError> {
    let cols: Vec<ColumnRow> = diesel::sql_query(
        "SELECT COLUMN_NAME AS nombre, EXTRA AS extra FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND BINARY TABLE_NAME = ?",
    )
    .bind::<Text, _>(t.as_str())
    .load(conn)
    .await?;
    let find = |name: &str| cols.iter().find(|c| c.nombre.eq_ignore_ascii_case(name));
    let id = find("id")
        .ok_or_else(|| StoreError::Invalid(format!("la tabla {t} no tiene columna 'id'")))?;
    if !id.extra.to_ascii_lowercase().contains("auto_increment") {
        return Err(StoreError::Invalid(format!(
            "la columna 'id' de la tabla {t} debe ser AUTO_INCREMENT"
        )));
    }
    if find("telefono").is_none() {
        return Err(StoreError::Invalid(format!(
            "la tabla {t} no tiene columna 'telefono'"
        )));
    }
    let blank: Count = sql::blank_phones::<Mysql>(t).get_result(conn).await?;
    check_blank_phones(t, blank.n)?;
    diesel::sql_query(format!("ALTER TABLE {} {NUMBER_COLUMNS}", t.quoted()))
        .execute(conn)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Invalid(format!("la tabla {t} tiene teléfonos repetidos"))
            }
            other => other,
        })?;
    Ok(())
}

/// One campaign by name.
async fn load(
    conn: &mut AsyncMysqlConnection,
    n: &CampaignName,
) -> Result<Option<Campaign>, StoreError> {
    let row: Option<BaseRow> = bases::table
        .filter(bases::nombre.eq(n.as_str()))
        .select(BaseRow::as_select())
        .first(conn)
        .await
        .optional()?;
    row.map(Campaign::try_from).transpose()
}

impl MysqlStore {
    /// Records `c` with its numbers table `c.tabla`: created, or adopted if it exists and `adopt`.
    /// All-or-nothing: MySQL DDL cannot be rolled back, so a table created here is dropped again if
    /// the `bases` row cannot be written.
    pub(in crate::store) async fn create_campaign(
        &self,
        c: &Campaign,
        adopt: bool,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        if load(&mut conn, &c.nombre).await?.is_some() {
            return Err(campaign_exists(&c.nombre));
        }
        let tabla = &c.tabla;
        let taken: i64 = bases::table
            .filter(bases::tabla.eq(tabla.as_str()))
            .count()
            .get_result(&mut conn)
            .await?;
        if taken > 0 {
            return Err(StoreError::Conflict(format!(
                "la tabla {tabla} ya pertenece a otra campaña"
            )));
        }
        let exists = table_exists(&mut conn, tabla).await?;
        let created = match (exists, adopt) {
            (true, true) => {
                adopt_table(&mut conn, tabla).await?;
                false
            }
            (true, false) => {
                return Err(StoreError::Conflict(format!(
                    "ya existe una tabla {tabla}; indique \"tabla\" para adoptarla"
                )))
            }
            (false, _) => {
                diesel::sql_query(create_table_sql(tabla))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| {
                        let e = StoreError::from(e);
                        if already_exists(&e) {
                            StoreError::Conflict(format!("la tabla {tabla} ya existe"))
                        } else {
                            e
                        }
                    })?;
                true
            }
        };
        let inserted = diesel::insert_into(bases::table)
            .values(BaseValues::of(c))
            .execute(&mut conn)
            .await;
        if let Err(e) = inserted {
            if created {
                let dropped = diesel::sql_query(format!("DROP TABLE IF EXISTS {}", tabla.quoted()))
                    .execute(&mut conn)
                    .await;
                if let Err(d) = dropped {
                    tracing::error!(campana = %c.nombre, error = %d, "no se pudo deshacer la tabla creada");
                }
            }
            return Err(match StoreError::from(e) {
                StoreError::Conflict(_) => campaign_exists(&c.nombre),
                other => other,
            });
        }
        Ok(())
    }

    /// Writes every field of an existing campaign as given.
    pub(in crate::store) async fn put_campaign(&self, c: &Campaign) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::update(bases::table.filter(bases::nombre.eq(c.nombre.as_str())))
            .set(BaseValues::of(c))
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn campaign(
        &self,
        n: &CampaignName,
    ) -> Result<Option<Campaign>, StoreError> {
        let mut conn = self.conn().await?;
        load(&mut conn, n).await
    }

    /// All campaigns, by name.
    pub(in crate::store) async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<BaseRow> = bases::table
            .order(bases::nombre.asc())
            .select(BaseRow::as_select())
            .load(&mut conn)
            .await?;
        rows.into_iter().map(Campaign::try_from).collect()
    }

    /// Changes settings; returns the campaign as stored. Row-locked, so concurrent patches do not
    /// lose each other's fields.
    pub(in crate::store) async fn update_campaign(
        &self,
        n: &CampaignName,
        p: &CampaignPatch,
    ) -> Result<Campaign, StoreError> {
        let mut conn = self.conn().await?;
        let name = n.clone();
        let patch = p.clone();
        conn.transaction::<Campaign, StoreError, _>(async move |conn| {
            let mut c = locked_campaign(conn, &name).await?;
            patched(&mut c, &patch)?;
            c.actualizada = now_ms();
            diesel::update(bases::table.filter(bases::nombre.eq(name.as_str())))
                .set(BaseValues::of(&c))
                .execute(conn)
                .await?;
            Ok(c)
        })
        .await
    }

    /// Records a state unconditionally (the dialer's own transitions, e.g. FINALIZADA).
    pub(in crate::store) async fn set_campaign_state(
        &self,
        n: &CampaignName,
        s: CampaignState,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let changed = diesel::update(bases::table.filter(bases::nombre.eq(n.as_str())))
            .set((
                bases::estado.eq(s.as_str()),
                bases::actualizada.eq(to_naive(now_ms())),
            ))
            .execute(&mut conn)
            .await?;
        if changed == 0 {
            return Err(campaign_missing(n));
        }
        Ok(())
    }

    /// Compare-and-set of the state: moves to `to` only from one of `from`, else `Conflict` naming the
    /// current state. Two concurrent requests cannot both win.
    pub(in crate::store) async fn transition_campaign_state(
        &self,
        n: &CampaignName,
        from: &[CampaignState],
        to: CampaignState,
        motivo: Option<&str>,
    ) -> Result<Campaign, StoreError> {
        let mut conn = self.conn().await?;
        let name = n.clone();
        let from: Vec<CampaignState> = from.to_vec();
        let motivo = motivo.map(str::to_owned);
        conn.transaction::<Campaign, StoreError, _>(async move |conn| {
            let mut c = locked_campaign(conn, &name).await?;
            if !from.contains(&c.estado) {
                return Err(StoreError::Conflict(format!(
                    "la campaña {name} está {} y no puede pasar a {to}",
                    c.estado
                )));
            }
            c.estado = to;
            c.actualizada = now_ms();
            c.motivo = motivo;
            diesel::update(bases::table.filter(bases::nombre.eq(name.as_str())))
                .set((
                    bases::estado.eq(to.as_str()),
                    bases::actualizada.eq(to_naive(c.actualizada)),
                    bases::motivo.eq(c.motivo.as_deref()),
                ))
                .execute(conn)
                .await?;
            Ok(c)
        })
        .await
    }
}

impl MysqlStore {
    /// Adds the columns later versions added to numbers tables (`disposicion`, migration `guion`;
    /// `zona_horaria`, `espera` and their index, migration `reglas`) to the tables of campaigns
    /// created before, after the migrations ran. A campaign whose table is missing (dropped by
    /// hand) is logged and skipped: the service starts all the same.
    pub(super) async fn add_disposition_columns(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tablas: Vec<String> = bases::table.select(bases::tabla).load(&mut conn).await?;
        if tablas.is_empty() {
            return Ok(());
        }
        // Two reads of the catalog for all tables; names compared exactly (they are
        // case-sensitive on Linux).
        let names = |rows: Vec<NameRow>| -> std::collections::HashSet<String> {
            rows.into_iter().map(|r| r.nombre).collect()
        };
        let existing = names(
            diesel::sql_query(
                "SELECT TABLE_NAME AS nombre FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE()",
            )
            .load(&mut conn)
            .await?,
        );
        let done = names(
            diesel::sql_query(
                "SELECT TABLE_NAME AS nombre FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() \
                 AND COLUMN_NAME IN ('disposicion', 'zona_horaria', 'espera') \
                 GROUP BY TABLE_NAME HAVING COUNT(*) = 3",
            )
            .load(&mut conn)
            .await?,
        );
        for raw in tablas {
            if done.contains(&raw) {
                continue;
            }
            let t = match TableName::parse(&raw) {
                Ok(t) => t,
                Err(e) => {
                    warn_numbers_table(&raw, &e.to_string());
                    continue;
                }
            };
            if !existing.contains(&raw) {
                warn_numbers_table(&raw, "la tabla no existe");
                continue;
            }
            let added = diesel::sql_query(format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS disposicion VARCHAR(24) NULL, \
                 ADD COLUMN IF NOT EXISTS zona_horaria VARCHAR(64) NULL, \
                 ADD COLUMN IF NOT EXISTS espera VARCHAR(16) NULL, \
                 ADD INDEX IF NOT EXISTS idx_zona (estado, zona_horaria)",
                t.quoted()
            ))
            .execute(&mut conn)
            .await;
            match added.map_err(StoreError::from) {
                Ok(_) => {
                    tracing::info!(tabla = %t, "columnas disposicion, zona_horaria y espera agregadas")
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => warn_numbers_table(&raw, &e.to_string()),
            }
        }
        Ok(())
    }
}

/// Reads a campaign's row and locks it until the transaction ends (`SELECT … FOR UPDATE`), so a
/// read-modify-write of its settings or state cannot interleave with another.
async fn locked_campaign(
    conn: &mut AsyncMysqlConnection,
    name: &CampaignName,
) -> Result<Campaign, StoreError> {
    let row: Option<BaseRow> = bases::table
        .filter(bases::nombre.eq(name.as_str()))
        .select(BaseRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?;
    Campaign::try_from(row.ok_or_else(|| campaign_missing(name))?)
}
