//! Approvals asked on the terminal.

use ferry_engine::ci::{ApprovalDecision, Approver};
use std::future::Future;
use std::io::Write;
use std::pin::Pin;

/// Asks the person at the terminal, one job at a time: `y` approves, anything else
/// refuses.
#[derive(Debug, Default)]
pub struct TerminalApprover;

impl Approver for TerminalApprover {
    fn approve<'a>(
        &'a self,
        job: &'a str,
        message: &'a str,
    ) -> Pin<Box<dyn Future<Output = ApprovalDecision> + Send + 'a>> {
        let question = format!("\nJob `{job}` needs approval: {message}\nApprove? [y/N] ");
        Box::pin(async move {
            let answer = tokio::task::spawn_blocking(move || {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(question.as_bytes());
                let _ = err.flush();
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map(|_| line)
            })
            .await;
            match answer {
                Ok(Ok(line)) if matches!(line.trim(), "y" | "Y" | "yes" | "Yes") => {
                    ApprovalDecision::Approved
                }
                Ok(Ok(_)) => ApprovalDecision::Refused("refused at the terminal".to_string()),
                _ => ApprovalDecision::NoApprover,
            }
        })
    }
}
