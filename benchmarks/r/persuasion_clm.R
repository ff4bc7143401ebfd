# Reference values for personae's persuasion regression from R's ordinal package.
#
# Reads the debates of tests/unit/data/persuasion_clm.csv (written by
# `python benchmarks/validity_persuasion.py --csv tests/unit/data/persuasion_clm.csv`),
# fits the published model of Salvi et al. (2025),
#   clm(post ~ treatment, nominal = ~ pre)
# (pre- and post-debate agreement toward the opponent as factors, the condition
# against the human opponent), the proportional-odds model with pre as a factor
# and its nominal_test, and personae's alternative model (linear pre plus
# opinion-strength dummies), and writes estimates, standard errors and
# log-likelihoods to tests/unit/data/persuasion_clm_reference.json.
#
# Development only (R is not a personae dependency):
#   apt-get install -y r-base-core r-cran-ordinal r-cran-jsonlite
#   Rscript benchmarks/r/persuasion_clm.R [data.csv] [reference.json]

suppressPackageStartupMessages({
  library(ordinal)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
input <- if (length(args) >= 1) args[1] else "tests/unit/data/persuasion_clm.csv"
output <- if (length(args) >= 2) args[2] else "tests/unit/data/persuasion_clm_reference.json"

debates <- read.csv(input, stringsAsFactors = FALSE)
pro <- debates$opponent_side == "pro"
# Agreement re-oriented toward the opponent: unchanged against pro, 6 - a against con.
pre_toward <- ifelse(pro, debates$pre, 6 - debates$pre)
post_toward <- ifelse(pro, debates$post, 6 - debates$post)
opponent <- ifelse(debates$opponent == "ai", "AI", debates$opponent)
personalised <- tolower(as.character(debates$personalised)) == "true"
condition <- ifelse(personalised, paste(opponent, "personalised"), opponent)

data <- data.frame(
  post = factor(post_toward, ordered = TRUE),
  pre = factor(pre_toward),
  pre_linear = pre_toward,
  treatment = factor(
    condition,
    levels = c("human", "human personalised", "AI", "AI personalised")
  ),
  strength = factor(debates$strength, levels = c("low", "moderate", "high"))
)

# gradTol as an argument, not control = clm.control(...): nominal_test refits with
# convergence = "silent", which clashes with a control object.
published <- clm(post ~ treatment, nominal = ~pre, data = data, gradTol = 1e-10)
proportional_factor <- clm(post ~ treatment + pre, data = data, gradTol = 1e-10)
alternative <- clm(post ~ treatment + strength + pre_linear, data = data, gradTol = 1e-10)
test <- nominal_test(proportional_factor)

fit_summary <- function(fit, formula) {
  table <- coef(summary(fit))
  list(
    formula = formula,
    names = rownames(table),
    coef = unname(table[, "Estimate"]),
    se = unname(table[, "Std. Error"]),
    loglik = as.numeric(logLik(fit)),
    n = fit$nobs,
    max_gradient = max(abs(fit$gradient)),
    condition_number = fit$cond.H
  )
}

reference <- list(
  source = paste(
    "R", paste(R.version$major, R.version$minor, sep = "."),
    "ordinal", as.character(packageVersion("ordinal"))
  ),
  data = input,
  published = fit_summary(published, "clm(post ~ treatment, nominal = ~ pre)"),
  proportional_factor = fit_summary(proportional_factor, "clm(post ~ treatment + pre)"),
  alternative = fit_summary(
    alternative, "clm(post ~ treatment + strength + pre_linear)"
  ),
  nominal_test = list(
    term = "pre",
    statistic = test["pre", "LRT"],
    df = test["pre", "Df"],
    p = test["pre", "Pr(>Chi)"],
    loglik = test["pre", "logLik"]
  )
)

write_json(reference, output, auto_unbox = TRUE, digits = NA, pretty = TRUE)
cat("wrote", output, "\n")
