//! The batched writer's single round trip on MySQL: number updates and CDR rows of many calls.

use diesel::mysql::Mysql;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::MysqlStore;
use crate::store::rows::NewCall;
use crate::store::schema::llamadas;
use crate::store::{sql, NumberUpdate, StoreError};

impl MysqlStore {
    pub(in crate::store) async fn apply(&self, updates: &[NumberUpdate]) -> Result<(), StoreError> {
        let updates = updates.to_vec();
        let mut conn = self.conn().await?;
        conn.transaction::<(), StoreError, _>(async move |conn| {
            for w in sql::plan(&updates) {
                if !w.sent.is_empty() {
                    sql::sent::<Mysql>(w.tabla, &w.sent).execute(conn).await?;
                }
                if !w.answered.is_empty() {
                    sql::answered::<Mysql>(w.tabla, &w.answered)
                        .execute(conn)
                        .await?;
                }
                if !w.finished.is_empty() {
                    sql::finish::<Mysql>(w.tabla, &w.finished)
                        .execute(conn)
                        .await?;
                }
                if !w.requeued.is_empty() {
                    sql::requeue::<Mysql>(w.tabla, &w.requeued)
                        .execute(conn)
                        .await?;
                    // Refused without a channel: not an attempt for the caps either.
                    let uuids: Vec<&str> = w.requeued.iter().map(|r| r.1).collect();
                    sql::forget_attempts_by_uuid::<Mysql>(&uuids)
                        .execute(conn)
                        .await?;
                }
                if !w.delivered.is_empty() {
                    sql::delivered::<Mysql>(w.tabla, &w.delivered)
                        .execute(conn)
                        .await?;
                }
            }
            let calls: Vec<NewCall<'_>> = sql::calls(&updates)
                .into_iter()
                .map(NewCall::from)
                .collect();
            if !calls.is_empty() {
                diesel::insert_or_ignore_into(llamadas::table)
                    .values(&calls)
                    .execute(conn)
                    .await?;
            }
            Ok(())
        })
        .await
    }
}
