//! The batched writer's single round trip: number updates and CDR rows of many calls at once.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Datetime, Integer, Nullable, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};

use diesel::mysql::Mysql;

use super::schema::llamadas;
use super::{placeholders, to_naive, CallRecord, NumberUpdate, Store, StoreError};
use crate::domain::TableName;

#[derive(Insertable)]
#[diesel(table_name = llamadas)]
struct NewCall<'a> {
    campana: &'a str,
    numero_id: i64,
    telefono: &'a str,
    intento: i32,
    uuid: &'a str,
    nodo: &'a str,
    estado: &'a str,
    resultado: &'a str,
    causa: Option<&'a str>,
    amd_resultado: Option<&'a str>,
    amd_causa: Option<&'a str>,
    inicio: chrono::NaiveDateTime,
    contestada: Option<chrono::NaiveDateTime>,
    fin: chrono::NaiveDateTime,
    billsec: i32,
    duracion: i32,
}

fn clamp(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl<'a> From<&'a CallRecord> for NewCall<'a> {
    fn from(r: &'a CallRecord) -> Self {
        NewCall {
            campana: r.campana.as_str(),
            numero_id: r.numero_id,
            telefono: &r.telefono,
            intento: clamp(r.intento),
            uuid: &r.uuid,
            nodo: &r.nodo,
            estado: r.estado.as_str(),
            resultado: r.resultado.as_str(),
            causa: r.causa.as_deref(),
            amd_resultado: r.amd_resultado.as_deref(),
            amd_causa: r.amd_causa.as_deref(),
            inicio: to_naive(r.inicio),
            contestada: r.contestada.map(to_naive),
            fin: to_naive(r.fin),
            billsec: clamp(r.billsec),
            duracion: clamp(r.duracion),
        }
    }
}

/// `CASE id WHEN ? THEN ? … END`: one column's new values for many rows of one statement.
fn case_by_id(n: usize) -> String {
    let mut sql = String::with_capacity(16 + n * 14);
    sql.push_str("CASE id");
    for _ in 0..n {
        sql.push_str(" WHEN ? THEN ?");
    }
    sql.push_str(" END");
    sql
}

impl Store {
    /// Applies a batch of updates (any mix of campaigns) in ONE transaction: either every number and
    /// CDR of the batch is written or none is, so the writer can retry the same batch after an outage.
    ///
    /// A few statements per campaign table, whatever the batch size: one `UPDATE … WHERE id IN (…)`
    /// for the answered calls (skipping those the same batch also finishes), one `UPDATE … CASE id …`
    /// for the finished ones (the last attempt of a number wins), one multi-row insert of CDRs.
    pub async fn apply(&self, updates: &[NumberUpdate]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        let updates = updates.to_vec();
        let mut conn = self.conn().await?;
        conn.transaction::<(), StoreError, _>(async move |conn| {
            // Per table, in first-seen order: answered ids, and the last record of each finished id.
            let mut tables: Vec<(&TableName, Vec<i64>, Vec<&CallRecord>)> = Vec::new();
            fn slot<'a>(
                tables: &mut Vec<(&'a TableName, Vec<i64>, Vec<&'a CallRecord>)>,
                t: &'a TableName,
            ) -> usize {
                match tables.iter().position(|(name, _, _)| *name == t) {
                    Some(i) => i,
                    None => {
                        tables.push((t, Vec::new(), Vec::new()));
                        tables.len() - 1
                    }
                }
            }
            for u in &updates {
                match u {
                    NumberUpdate::Answered { tabla, id } => {
                        let i = slot(&mut tables, tabla);
                        tables[i].1.push(*id);
                    }
                    NumberUpdate::Finished(r) => {
                        let i = slot(&mut tables, &r.tabla);
                        let finished = &mut tables[i].2;
                        finished.retain(|old| old.numero_id != r.numero_id);
                        finished.push(r);
                    }
                }
            }
            for (tabla, answered, finished) in &tables {
                let answered: Vec<i64> = answered
                    .iter()
                    .copied()
                    .filter(|id| !finished.iter().any(|r| r.numero_id == *id))
                    .collect();
                if !answered.is_empty() {
                    let mut q = diesel::sql_query(format!(
                        "UPDATE {} SET estado = 'CONTESTADO' WHERE estado = 'MARCANDO' AND id IN ({})",
                        tabla.quoted(),
                        placeholders(answered.len())
                    ))
                    .into_boxed::<Mysql>();
                    for id in &answered {
                        q = q.bind::<BigInt, _>(*id);
                    }
                    q.execute(conn).await?;
                }
                if !finished.is_empty() {
                    finish(conn, tabla, finished).await?;
                }
            }
            let calls: Vec<NewCall<'_>> = updates
                .iter()
                .filter_map(|u| match u {
                    NumberUpdate::Finished(r) => Some(NewCall::from(r)),
                    NumberUpdate::Answered { .. } => None,
                })
                .collect();
            if !calls.is_empty() {
                diesel::insert_into(llamadas::table).values(&calls).execute(conn).await?;
            }
            Ok(())
        })
        .await
    }
}

/// The final state of many attempts of one table in one statement. Only the attempt a row is on is
/// written (its claim's UUID, or none for a row recovered without one): a late record of an older
/// attempt must not overwrite a newer one. (Its CDR row is written all the same.)
async fn finish(
    conn: &mut diesel_async::AsyncMysqlConnection,
    tabla: &TableName,
    rows: &[&CallRecord],
) -> Result<(), StoreError> {
    let n = rows.len();
    let case = case_by_id(n);
    let sql = format!(
        "UPDATE {t} SET estado = {case}, intentos = {case}, resultado = {case}, causa = {case}, \
         duracion = {case}, proximo_intento = {case}, uuid = {case} \
         WHERE id IN ({ids}) AND (uuid IS NULL OR uuid = {case})",
        t = tabla.quoted(),
        ids = placeholders(n),
    );
    let mut q = diesel::sql_query(sql).into_boxed::<Mysql>();
    for r in rows {
        q = q
            .bind::<BigInt, _>(r.numero_id)
            .bind::<Text, _>(r.estado.as_str());
    }
    for r in rows {
        q = q
            .bind::<BigInt, _>(r.numero_id)
            .bind::<Integer, _>(clamp(r.intento));
    }
    for r in rows {
        q = q
            .bind::<BigInt, _>(r.numero_id)
            .bind::<Text, _>(r.resultado.as_str());
    }
    for r in rows {
        q = q
            .bind::<BigInt, _>(r.numero_id)
            .bind::<Nullable<Text>, _>(r.causa.as_deref());
    }
    for r in rows {
        q = q
            .bind::<BigInt, _>(r.numero_id)
            .bind::<Integer, _>(clamp(r.duracion));
    }
    for r in rows {
        q = q
            .bind::<BigInt, _>(r.numero_id)
            .bind::<Nullable<Datetime>, _>(r.proximo_intento.map(to_naive));
    }
    for r in rows {
        q = q
            .bind::<BigInt, _>(r.numero_id)
            .bind::<Text, _>(r.uuid.as_str());
    }
    for r in rows {
        q = q.bind::<BigInt, _>(r.numero_id);
    }
    for r in rows {
        q = q
            .bind::<BigInt, _>(r.numero_id)
            .bind::<Text, _>(r.uuid.as_str());
    }
    q.execute(conn).await?;
    Ok(())
}
