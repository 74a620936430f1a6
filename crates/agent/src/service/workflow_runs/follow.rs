//! Following a stored run (a repeated request id): the run as found, its finished steps,
//! then each step as it finishes, read from the database, until the run ends. Works
//! whichever replica drives the run.

use std::time::Duration;

use agentic_platform::db::Pool;
use agentic_proto::agent::v1 as pb;
use agentic_proto::agent::v1::workflow_run_event::Event;
use tokio::sync::mpsc;
use tonic::Status;

use crate::model::{RUN_RUNNING, WorkflowRunRow};
use crate::store;

/// How often a followed run is read again.
const POLL_EVERY: Duration = Duration::from_millis(250);

type Sender = mpsc::Sender<Result<pb::WorkflowRunEvent, Status>>;

pub(super) async fn follow(pool: Pool, mut row: WorkflowRunRow, sender: Sender) {
    if send(&sender, Event::RunStarted((&row).into()))
        .await
        .is_err()
    {
        return;
    }
    let mut told = 0;
    loop {
        let steps = row.steps();
        for step in steps.iter().skip(told) {
            if step.status == RUN_RUNNING {
                break;
            }
            if send(&sender, Event::StepFinished(step.into()))
                .await
                .is_err()
            {
                return;
            }
            told += 1;
        }
        if row.is_finished() {
            let _ = send(&sender, Event::RunFinished((&row).into())).await;
            return;
        }
        tokio::select! {
            _ = sender.closed() => return,
            _ = tokio::time::sleep(POLL_EVERY) => {}
        }
        let (tenant, id) = (row.tenant_id, row.id);
        match pool
            .run(async |conn| store::find_run(conn, tenant, id).await)
            .await
        {
            Ok(Some(next)) => row = next,
            Ok(None) => {
                let _ = sender
                    .send(Err(Status::not_found("the workflow run was deleted")))
                    .await;
                return;
            }
            Err(error) => {
                let _ = sender.send(Err(error.into())).await;
                return;
            }
        }
    }
}

async fn send(sender: &Sender, event: Event) -> Result<(), ()> {
    sender
        .send(Ok(pb::WorkflowRunEvent { event: Some(event) }))
        .await
        .map_err(|_| ())
}
