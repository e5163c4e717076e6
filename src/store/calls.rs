//! The batched writer's single round trip: number updates and CDR rows of many calls at once.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Datetime, Integer, Nullable, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::schema::llamadas;
use super::{to_naive, CallRecord, NumberUpdate, Store, StoreError};

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

impl Store {
    /// Applies a batch of updates (any mix of campaigns) in ONE transaction: either every number and
    /// CDR of the batch is written or none is, so the writer can retry the same batch after an outage.
    pub async fn apply(&self, updates: &[NumberUpdate]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        let updates = updates.to_vec();
        let mut conn = self.conn().await?;
        conn.transaction::<(), StoreError, _>(async move |conn| {
            let mut calls = Vec::new();
            for u in &updates {
                match u {
                    NumberUpdate::Answered { tabla, id } => {
                        diesel::sql_query(format!(
                            "UPDATE {} SET estado = 'CONTESTADO' WHERE id = ? AND estado = 'MARCANDO'",
                            tabla.quoted()
                        ))
                        .bind::<BigInt, _>(*id)
                        .execute(conn)
                        .await?;
                    }
                    NumberUpdate::Finished(r) => {
                        // Only the attempt the row is on (its claim's UUID, or none for a row
                        // recovered without one): a late record of an older attempt must not
                        // overwrite a newer one. Its CDR row is still written below.
                        diesel::sql_query(format!(
                            "UPDATE {} SET estado = ?, intentos = ?, resultado = ?, causa = ?, \
                             uuid = ?, duracion = ?, proximo_intento = ? \
                             WHERE id = ? AND (uuid = ? OR uuid IS NULL)",
                            r.tabla.quoted()
                        ))
                        .bind::<Text, _>(r.estado.as_str())
                        .bind::<Integer, _>(clamp(r.intento))
                        .bind::<Text, _>(r.resultado.as_str())
                        .bind::<Nullable<Text>, _>(r.causa.as_deref())
                        .bind::<Text, _>(r.uuid.as_str())
                        .bind::<Integer, _>(clamp(r.duracion))
                        .bind::<Nullable<Datetime>, _>(r.proximo_intento.map(to_naive))
                        .bind::<BigInt, _>(r.numero_id)
                        .bind::<Text, _>(r.uuid.as_str())
                        .execute(conn)
                        .await?;
                        calls.push(NewCall::from(r));
                    }
                }
            }
            if !calls.is_empty() {
                diesel::insert_into(llamadas::table).values(&calls).execute(conn).await?;
            }
            Ok(())
        })
        .await
    }
}
