//! The batched writer's transaction on SQLite: number updates and CDR rows of many calls.

use diesel::sqlite::Sqlite;
use diesel::RunQueryDsl;

use super::SqliteStore;
use crate::store::rows::NewCall;
use crate::store::schema::llamadas;
use crate::store::{sql, NumberUpdate, StoreError};

impl SqliteStore {
    pub(in crate::store) async fn apply(&self, updates: &[NumberUpdate]) -> Result<(), StoreError> {
        let updates = updates.to_vec();
        self.write(move |c| {
            c.immediate_transaction(|c| {
                for w in sql::plan(&updates) {
                    if !w.sent.is_empty() {
                        sql::sent::<Sqlite>(w.tabla, &w.sent).execute(c)?;
                    }
                    if !w.answered.is_empty() {
                        sql::answered::<Sqlite>(w.tabla, &w.answered).execute(c)?;
                    }
                    if !w.finished.is_empty() {
                        sql::finish::<Sqlite>(w.tabla, &w.finished).execute(c)?;
                    }
                    if !w.requeued.is_empty() {
                        sql::requeue::<Sqlite>(w.tabla, &w.requeued).execute(c)?;
                        let uuids: Vec<&str> = w.requeued.iter().map(|r| r.1).collect();
                        sql::forget_attempts_by_uuid::<Sqlite>(&uuids).execute(c)?;
                    }
                    if !w.delivered.is_empty() {
                        sql::delivered::<Sqlite>(w.tabla, &w.delivered).execute(c)?;
                    }
                }
                let calls: Vec<NewCall<'_>> = sql::calls(&updates)
                    .into_iter()
                    .map(NewCall::from)
                    .collect();
                if !calls.is_empty() {
                    diesel::insert_or_ignore_into(llamadas::table)
                        .values(&calls)
                        .execute(c)?;
                }
                Ok(())
            })
        })
        .await
    }
}
