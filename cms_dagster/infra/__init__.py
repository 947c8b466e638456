"""Infrastructure as code for CMS: the CloudFormation stacks (infra/cloudformation/), their linting,
the collector's deployment package, the deploy, and the run-failure metric that the alarms watch."""
