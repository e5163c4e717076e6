//! `bases`: campaigns, their creation (with their numbers table) and their state.

use chrono::{DateTime, NaiveDateTime, NaiveTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

use super::schema::bases;
use super::{
    from_naive, to_naive, to_u32, Campaign, CampaignPatch, NewCampaign, Store, StoreError,
};
use crate::domain::{
    parse_zone, AmdMode, AmdNotSure, CallingWindow, CampaignName, CampaignState, Cps, DaySet,
    Extension, Gateway, PhoneNumber, TableName,
};

#[derive(Queryable, Selectable)]
#[diesel(table_name = bases)]
#[diesel(check_for_backend(diesel::mysql::Mysql))]
struct BaseRow {
    nombre: String,
    tabla: String,
    cps: f64,
    max_canales: i32,
    reintentos: i32,
    intervalo_reintento: i32,
    amd: String,
    amd_incierto: String,
    destino_humano: String,
    destino_maquina: String,
    caller_id: Option<String>,
    gateway: Option<String>,
    timeout_llamada: i32,
    hora_inicio: NaiveTime,
    hora_fin: NaiveTime,
    dias: String,
    zona_horaria: String,
    estado: String,
    creada: NaiveDateTime,
    actualizada: NaiveDateTime,
}

#[derive(Insertable, AsChangeset)]
#[diesel(table_name = bases)]
#[diesel(treat_none_as_null = true)]
struct BaseValues<'a> {
    nombre: &'a str,
    tabla: &'a str,
    cps: f64,
    max_canales: i32,
    reintentos: i32,
    intervalo_reintento: i32,
    amd: &'a str,
    amd_incierto: &'a str,
    destino_humano: &'a str,
    destino_maquina: &'a str,
    caller_id: Option<&'a str>,
    gateway: Option<&'a str>,
    timeout_llamada: i32,
    hora_inicio: NaiveTime,
    hora_fin: NaiveTime,
    dias: String,
    zona_horaria: &'a str,
    estado: &'a str,
    creada: NaiveDateTime,
    actualizada: NaiveDateTime,
}

/// Now, at the millisecond precision of `DATETIME(3)`, so a returned campaign equals the stored one.
fn now_ms() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

fn to_i32(v: u32) -> i32 {
    // Every bounded setting is ≤ 604 800 (see domain::settings), far below i32::MAX.
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl<'a> BaseValues<'a> {
    fn of(c: &'a Campaign) -> Self {
        BaseValues {
            nombre: c.nombre.as_str(),
            tabla: c.tabla.as_str(),
            cps: c.cps.get(),
            max_canales: to_i32(c.max_canales),
            reintentos: to_i32(c.reintentos),
            intervalo_reintento: to_i32(c.intervalo_reintento),
            amd: c.amd.as_str(),
            amd_incierto: c.amd_incierto.as_str(),
            destino_humano: c.destino_humano.as_str(),
            destino_maquina: c.destino_maquina.as_str(),
            caller_id: c.caller_id.as_ref().map(|p| p.as_str()),
            gateway: c.gateway.as_ref().map(|g| g.as_str()),
            timeout_llamada: to_i32(c.timeout_llamada),
            hora_inicio: c.ventana.inicio,
            hora_fin: c.ventana.fin,
            dias: c.ventana.dias.to_csv(),
            zona_horaria: c.ventana.zona.name(),
            estado: c.estado.as_str(),
            creada: to_naive(c.creada),
            actualizada: to_naive(c.actualizada),
        }
    }
}

impl TryFrom<BaseRow> for Campaign {
    type Error = StoreError;

    /// A row edited by hand into something invalid is reported, never trusted.
    fn try_from(r: BaseRow) -> Result<Self, StoreError> {
        let bad = |what: &str, e: String| {
            StoreError::Database(format!(
                "fila inválida en bases ({}): {what}: {e}",
                r.nombre
            ))
        };
        Ok(Campaign {
            nombre: CampaignName::parse(&r.nombre).map_err(|e| bad("nombre", e.to_string()))?,
            tabla: TableName::parse(&r.tabla).map_err(|e| bad("tabla", e.to_string()))?,
            cps: Cps::parse(r.cps).map_err(|e| bad("cps", e.to_string()))?,
            max_canales: to_u32("max_canales", r.max_canales)?,
            reintentos: to_u32("reintentos", r.reintentos)?,
            intervalo_reintento: to_u32("intervalo_reintento", r.intervalo_reintento)?,
            amd: AmdMode::parse(&r.amd).map_err(|e| bad("amd", e.to_string()))?,
            amd_incierto: AmdNotSure::parse(&r.amd_incierto)
                .map_err(|e| bad("amd_incierto", e.to_string()))?,
            destino_humano: Extension::parse("destino_humano", &r.destino_humano)
                .map_err(|e| bad("destino_humano", e.to_string()))?,
            destino_maquina: Extension::parse("destino_maquina", &r.destino_maquina)
                .map_err(|e| bad("destino_maquina", e.to_string()))?,
            caller_id: r
                .caller_id
                .as_deref()
                .map(PhoneNumber::parse)
                .transpose()
                .map_err(|e| bad("caller_id", e.to_string()))?,
            gateway: r
                .gateway
                .as_deref()
                .map(Gateway::parse)
                .transpose()
                .map_err(|e| bad("gateway", e.to_string()))?,
            timeout_llamada: to_u32("timeout_llamada", r.timeout_llamada)?,
            ventana: CallingWindow {
                inicio: r.hora_inicio,
                fin: r.hora_fin,
                dias: DaySet::parse_csv(&r.dias).map_err(|e| bad("dias", e.to_string()))?,
                zona: parse_zone(&r.zona_horaria)
                    .map_err(|e| bad("zona_horaria", e.to_string()))?,
            },
            estado: CampaignState::parse(&r.estado).map_err(|e| bad("estado", e.to_string()))?,
            creada: from_naive(r.creada),
            actualizada: from_naive(r.actualizada),
        })
    }
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    nombre: String,
    #[diesel(sql_type = Text)]
    extra: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
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
    ADD UNIQUE INDEX IF NOT EXISTS uq_telefono (telefono), \
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
            UNIQUE KEY uq_telefono (telefono), \
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

/// One campaign by name; `lock` takes a row lock (`FOR UPDATE`) for a read-modify-write.
async fn load(
    conn: &mut AsyncMysqlConnection,
    n: &CampaignName,
    lock: bool,
) -> Result<Option<Campaign>, StoreError> {
    let query = bases::table
        .filter(bases::nombre.eq(n.as_str()))
        .select(BaseRow::as_select());
    let row: Option<BaseRow> = if lock {
        query.for_update().first(conn).await.optional()?
    } else {
        query.first(conn).await.optional()?
    };
    row.map(Campaign::try_from).transpose()
}

fn already_exists(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(m) if m.contains("already exists"))
}

impl Store {
    /// Creates the campaign and its numbers table, or adopts `c.tabla` if it already exists.
    /// All-or-nothing: MySQL DDL cannot be rolled back, so a table created here is dropped again if
    /// the `bases` row cannot be written.
    pub async fn create_campaign(&self, c: &NewCampaign) -> Result<Campaign, StoreError> {
        let mut conn = self.conn().await?;
        if load(&mut conn, &c.nombre, false).await?.is_some() {
            return Err(StoreError::Conflict(format!(
                "la campaña {} ya existe",
                c.nombre
            )));
        }
        let tabla = c
            .tabla
            .clone()
            .unwrap_or_else(|| TableName::from(&c.nombre));
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
        let exists = table_exists(&mut conn, &tabla).await?;
        let created = match (exists, c.tabla.is_some()) {
            (true, true) => {
                adopt_table(&mut conn, &tabla).await?;
                false
            }
            (true, false) => {
                return Err(StoreError::Conflict(format!(
                    "ya existe una tabla {tabla}; indique \"tabla\" para adoptarla"
                )))
            }
            (false, _) => {
                diesel::sql_query(create_table_sql(&tabla))
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
        let now = now_ms();
        let campaign = Campaign {
            nombre: c.nombre.clone(),
            tabla: tabla.clone(),
            cps: c.cps,
            max_canales: c.max_canales,
            reintentos: c.reintentos,
            intervalo_reintento: c.intervalo_reintento,
            amd: c.amd,
            amd_incierto: c.amd_incierto,
            destino_humano: c.destino_humano.clone(),
            destino_maquina: c.destino_maquina.clone(),
            caller_id: c.caller_id.clone(),
            gateway: c.gateway.clone(),
            timeout_llamada: c.timeout_llamada,
            ventana: c.ventana.clone(),
            estado: CampaignState::Creada,
            creada: now,
            actualizada: now,
        };
        let inserted = diesel::insert_into(bases::table)
            .values(BaseValues::of(&campaign))
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
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("la campaña {} ya existe", c.nombre))
                }
                other => other,
            });
        }
        tracing::info!(campana = %campaign.nombre, tabla = %tabla, adoptada = !created, "campaña creada");
        Ok(campaign)
    }

    pub async fn campaign(&self, n: &CampaignName) -> Result<Option<Campaign>, StoreError> {
        let mut conn = self.conn().await?;
        load(&mut conn, n, false).await
    }

    /// All campaigns, by name.
    pub async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
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
    pub async fn update_campaign(
        &self,
        n: &CampaignName,
        p: &CampaignPatch,
    ) -> Result<Campaign, StoreError> {
        let mut conn = self.conn().await?;
        let name = n.clone();
        let patch = p.clone();
        conn.transaction::<Campaign, StoreError, _>(async move |conn| {
            let mut c = locked_campaign(conn, &name).await?;
            patch.apply_to(&mut c);
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
    pub async fn set_campaign_state(
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
            return Err(StoreError::NotFound(format!("no existe la campaña {n}")));
        }
        Ok(())
    }

    /// Compare-and-set of the state: moves to `to` only from one of `from`, else `Conflict` naming the
    /// current state. Two concurrent requests cannot both win.
    pub async fn transition_campaign_state(
        &self,
        n: &CampaignName,
        from: &[CampaignState],
        to: CampaignState,
    ) -> Result<Campaign, StoreError> {
        let mut conn = self.conn().await?;
        let name = n.clone();
        let from: Vec<CampaignState> = from.to_vec();
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
            diesel::update(bases::table.filter(bases::nombre.eq(name.as_str())))
                .set((
                    bases::estado.eq(to.as_str()),
                    bases::actualizada.eq(to_naive(c.actualizada)),
                ))
                .execute(conn)
                .await?;
            Ok(c)
        })
        .await
    }
}

/// Reads a campaign's row and locks it until the transaction ends (`SELECT … FOR UPDATE`), so a
/// read-modify-write of its settings or state cannot interleave with another.
async fn locked_campaign(
    conn: &mut diesel_async::AsyncMysqlConnection,
    name: &CampaignName,
) -> Result<Campaign, StoreError> {
    let row: Option<BaseRow> = bases::table
        .filter(bases::nombre.eq(name.as_str()))
        .select(BaseRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?;
    Campaign::try_from(
        row.ok_or_else(|| StoreError::NotFound(format!("no existe la campaña {name}")))?,
    )
}
