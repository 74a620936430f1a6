//! Step input templates: `{{input}}` is the run's input, `{{steps.N.output}}` the output
//! of an earlier step N (0 is the first). Spaces inside the braces are allowed. Any other
//! `{{…}}` is a problem, as is a step that refers to itself or a later step.

/// One placeholder found in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placeholder {
    Input,
    Step(usize),
}

/// The placeholders of `template` with their byte ranges, or the first one that is not
/// understood.
fn placeholders(template: &str) -> Result<Vec<(std::ops::Range<usize>, Placeholder)>, String> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = template[from..].find("{{").map(|i| i + from) {
        let Some(close) = template[open..].find("}}").map(|i| i + open) else {
            break;
        };
        let inner = template[open + 2..close].trim();
        let placeholder = if inner == "input" {
            Placeholder::Input
        } else if let Some(index) = inner
            .strip_prefix("steps.")
            .and_then(|rest| rest.strip_suffix(".output"))
            .and_then(|n| n.parse::<usize>().ok())
        {
            Placeholder::Step(index)
        } else {
            return Err(format!(
                "{{{{{inner}}}}} is not a placeholder ({{{{input}}}} or {{{{steps.N.output}}}})"
            ));
        };
        found.push((open..close + 2, placeholder));
        from = close + 2;
    }
    Ok(found)
}

/// Why the template of step `index` cannot be rendered, if it cannot.
pub fn check(template: &str, index: usize) -> Result<(), String> {
    for (_, placeholder) in placeholders(template)? {
        if let Placeholder::Step(n) = placeholder
            && n >= index
        {
            return Err(format!(
                "{{{{steps.{n}.output}}}} is not the output of an earlier step"
            ));
        }
    }
    Ok(())
}

/// `template` with the run's `input` and the earlier steps' `outputs` in place. The
/// template must have passed `check` for its step.
pub fn render(template: &str, input: &str, outputs: &[String]) -> String {
    let Ok(found) = placeholders(template) else {
        return template.to_owned();
    };
    let mut rendered = String::with_capacity(template.len() + input.len());
    let mut last = 0;
    for (range, placeholder) in found {
        rendered.push_str(&template[last..range.start]);
        match placeholder {
            Placeholder::Input => rendered.push_str(input),
            Placeholder::Step(n) => rendered.push_str(outputs.get(n).map_or("", String::as_str)),
        }
        last = range.end;
    }
    rendered.push_str(&template[last..]);
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_input_and_earlier_outputs() {
        let outputs = vec!["first".to_owned(), "second".to_owned()];
        assert_eq!(
            render(
                "Q: {{input}} / {{ steps.0.output }} / {{steps.1.output}}",
                "why",
                &outputs
            ),
            "Q: why / first / second"
        );
        assert_eq!(render("no placeholders", "x", &[]), "no placeholders");
        assert_eq!(render("{{input}}{{input}}", "ab", &[]), "abab");
    }

    #[test]
    fn refuses_unknown_and_forward_references() {
        assert!(check("{{input}} {{steps.0.output}}", 1).is_ok());
        assert!(check("{{steps.1.output}}", 1).is_err());
        assert!(check("{{steps.5.output}}", 2).is_err());
        let unknown = check("{{name}}", 0).unwrap_err();
        assert!(unknown.contains("{{name}}"), "{unknown}");
        assert!(check("{{steps.x.output}}", 3).is_err());
        // An unclosed brace is text.
        assert!(check("{{input", 0).is_ok());
    }
}
